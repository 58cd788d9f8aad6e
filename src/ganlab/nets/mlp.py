"""Multilayer perceptrons for toy data (D = 1, 2, ...) and flattened images.

The generator ends in tanh for images (data in [-1, 1]) and is linear for toy data (unbounded support).
Class conditioning (num_classes > 0): G reads [z, one-hot y]; D reads [x, one-hot y] (`concat`) or adds the
projection term to its logits (`projection`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import Projection, check_conditioning, minibatch_layer, norm_layer, one_hot, spectral_normalize


class Generator(nn.Module):
    def __init__(self, shape: tuple[int, ...], z_dim: int = 64, hidden: int = 512, depth: int = 3,
                 norm: str = "none", num_classes: int = 0):
        super().__init__()
        self.shape, self.z_dim, self.num_classes = tuple(shape), z_dim, num_classes
        layers, width = [], z_dim + num_classes
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), norm_layer(norm, hidden, conv=False), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, math.prod(self.shape)))
        if len(self.shape) == 3:  # images
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], 1)  # (B, z_dim + K)
        return self.net(z).view(z.shape[0], *self.shape)  # (B, z_dim) -> (B, *shape)


class Discriminator(nn.Module):
    def __init__(self, shape: tuple[int, ...], hidden: int = 512, depth: int = 3, norm: str = "none",
                 spectral_norm: bool = False, minibatch: str = "none", num_classes: int = 0,
                 conditioning: str = "concat"):
        super().__init__()
        check_conditioning(conditioning)
        self.num_classes, self.features_dim = num_classes, hidden
        self.concat = num_classes if conditioning == "concat" else 0
        layers, width = [], math.prod(shape) + self.concat
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), norm_layer(norm, hidden, conv=False),
                       nn.LeakyReLU(0.2)]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.minibatch, extra = minibatch_layer(minibatch, width)
        self.head = nn.Linear(width + extra, 1)
        self.projection = Projection(num_classes, hidden) if num_classes and not self.concat else None
        if spectral_norm:
            spectral_normalize(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        x = x.flatten(1)  # (B, prod(shape))
        if self.concat:
            x = torch.cat([x, one_hot(y, self.num_classes, x)], 1)  # (B, prod(shape) + K)
        h = self.trunk(x)  # (B, hidden)
        logits = self.head(self.minibatch(h)).squeeze(1)  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(h, y)
        return {"logits": logits, "features": h}  # (B,), (B, hidden)
