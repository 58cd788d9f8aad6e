"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019).

A frozen copy of G, updated after every generator step as theta_ema <- d_t * theta_ema + (1 - d_t) * theta,
with d_t = min(decay, (1 + t) / (10 + t)) at the t-th update (t = 0, 1, ...): the warm-up of TensorFlow's
tf.train.ExponentialMovingAverage(num_updates=...), so that early on the copy averages the last ~t/10 steps
instead of holding ~decay^t of G's random initial weights (0.999^1000 = 0.37: a 1,000-iteration run's samples
would still be mostly noise); d_t reaches 0.999 at t ~ 9,000. The update count is a buffer: checkpointed, and
updated on the device (CUDA-graph safe, trainer=fast).
Buffers (BatchNorm statistics, spectral-norm vectors) are copied, not averaged. Being a submodule of the
LightningModule, it is saved in checkpoints and moved across devices with the rest.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # () t, the updates so far

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p, p = list(self.model.parameters()), list(model.parameters())
        t = self.updates
        keep = ((1 + t) / (10 + t)).clamp(max=self.decay)  # () float: d_t
        torch._foreach_lerp_(ema_p, [q.detach() for q in p], (1 - keep).to(ema_p[0].dtype))
        t.add_(1)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)
