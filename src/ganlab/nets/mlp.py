"""Multilayer perceptrons for toy data (D = 1, 2, ...) and flattened images.

The generator ends in tanh for images (data in [-1, 1]) and is linear for toy data (unbounded support).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from .layers import norm_layer, spectral_normalize


class Generator(nn.Module):
    def __init__(self, shape: tuple[int, ...], z_dim: int = 64, hidden: int = 512, depth: int = 3,
                 norm: str = "none"):
        super().__init__()
        self.shape, self.z_dim = tuple(shape), z_dim
        layers, width = [], z_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), norm_layer(norm, hidden, conv=False), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, math.prod(self.shape)))
        if len(self.shape) == 3:  # images
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(z).view(z.shape[0], *self.shape)  # (B, z_dim) -> (B, *shape)


class Discriminator(nn.Module):
    def __init__(self, shape: tuple[int, ...], hidden: int = 512, depth: int = 3, norm: str = "none",
                 spectral_norm: bool = False):
        super().__init__()
        layers, width = [], math.prod(shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), norm_layer(norm, hidden, conv=False),
                       nn.LeakyReLU(0.2)]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)
        if spectral_norm:
            spectral_normalize(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        h = self.trunk(x.flatten(1))  # (B, prod(shape)) -> (B, hidden)
        return {"logits": self.head(h).squeeze(1), "features": h}  # (B,), (B, hidden)
