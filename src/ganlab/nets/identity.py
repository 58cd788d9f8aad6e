"""A fixed generator x = z, z ~ N(0, I): with it only the critic trains, so the critic's value
E[D(real)] - E[D(z)] estimates a distance between the data and N(0, I) (experiment=critic_w1)."""
from __future__ import annotations

import math

from torch import Tensor, nn


class Generator(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape, self.z_dim, self.num_classes = tuple(shape), math.prod(shape), 0

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return z.view(z.shape[0], *self.shape)  # (B, D) -> (B, *shape)
