"""Pure nn.Modules, one architecture per file.

Contract:
    G(z, y=None) -> x          `G.z_dim`: latent size; `G.num_classes`: classes y it is conditioned on (0: none)
    D(x, y=None) -> dict(logits=(B,), features=(B, F), ...)
                               `D.num_classes`: classes y it reads (0: none); `D.features_dim`: F
Extra heads (nets/heads.py) add entries to D's dict, so callers never change.
A generator config with a `native` key (DCGAN's) is built with `native_side` (side_options) as well.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def fixed_labels(g: nn.Module, n: int, device: torch.device | str = "cpu") -> Tensor | None:
    """The labels a sample of n draws from a conditional G: 0, 1, ..., K-1, 0, 1, ... (every class equally
    often, the same for every sample call); None for an unconditional G."""
    k = getattr(g, "num_classes", 0)
    return torch.arange(n, device=device) % k if k else None


def side_options(net_g, native_side: int | None) -> dict:
    """{"native_side": the side of the data's files, where the data module enlarged them} for a generator config
    with a `native` key (nets/dcgan.py), {} for the others: what train.py, sampling.py and the bench build G with."""
    return {"native_side": native_side} if "native" in net_g else {}
