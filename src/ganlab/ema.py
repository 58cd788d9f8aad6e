"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019).

A frozen copy of G, updated after every generator step as theta_ema <- decay * theta_ema + (1 - decay) * theta.
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

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p, p = list(self.model.parameters()), list(model.parameters())
        torch._foreach_lerp_(ema_p, [q.detach() for q in p], 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)
