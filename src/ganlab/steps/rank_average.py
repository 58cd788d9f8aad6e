"""DDP's average of one net's gradients and the step's loss over the ranks (strategy.py).

Only the net about to step is reduced, in one all-reduce of one flat float32 buffer (StyleGAN2's way, not DDP's
wrapper, which expects every parameter in every backward). Every rank then holds the same gradients and loss, so
every rank reaches the same finite/non-finite verdict (nonfinite.py) and its loss scaler the same scale.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def average_over_ranks(params: Sequence[nn.Parameter], loss: Tensor, world: int) -> Tensor:
    """Replace each parameter's .grad by its mean over the `world` ranks (a missing gradient counts as zeros, so
    every rank reduces the same layout) and return the loss's mean, a 0-dim float32 tensor. Call it on every rank
    with the same parameters in the same order (an optimizer's param_groups)."""
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads] + [loss.detach().reshape(1).float()])  # (P + 1,)
    torch.distributed.all_reduce(flat)
    flat /= world
    for p, g in zip(params, flat[:-1].split([g.numel() for g in grads])):  # g: (numel(p),)
        p.grad = g.view_as(p).to(p.dtype)
    return flat[-1]
