"""Toy distributions, sampled on the fly on the training device.

ring8 and grid25 follow the mode-collapse protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al.
2018): 8 Gaussians (std 0.02) on a circle of radius 2; 25 Gaussians (std 0.05) on the grid {-4,-2,0,2,4}^2.
Mixtures expose `modes` (K, D) and `std` for the mode-coverage metrics.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Batch, DeviceDataModule


class Toy(DeviceDataModule):
    modes: Tensor | None = None  # (K, D) component means, for mixtures
    std: float | None = None  # component std, for mixtures

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n samples (n, D) on the generator's device."""
        raise NotImplementedError

    def batch(self, k: int, generator: torch.Generator, rank: int, world: int) -> Batch:
        generator.manual_seed(self.seed * 1_000_003 + k)
        x = self.sample(self.batch_size * world, generator)  # (W B, D): global batch k, the same on every rank
        return x[rank * self.batch_size:(rank + 1) * self.batch_size], None  # (B, D): this rank's block

    def real(self, n: int, device="cpu") -> Tensor:
        return self.sample(n, torch.Generator(device=device).manual_seed(self.seed + 12345))


class Mixture(Toy):
    """Equal-weight mixture of isotropic Gaussians with means `modes` and std `std`."""

    def sample(self, n, generator):
        dev = generator.device
        if self.modes.device != dev:  # moved once, to the training device
            self.modes = self.modes.to(dev)
        idx = torch.randint(len(self.modes), (n,), generator=generator, device=dev)  # (n,)
        noise = torch.randn(n, self.modes.shape[1], generator=generator, device=dev)  # (n, D)
        return self.modes[idx] + self.std * noise


class Ring(Mixture):
    def __init__(self, n: int = 8, radius: float = 2.0, std: float = 0.02, **kw):
        super().__init__(**kw)
        angle = torch.arange(n) * (2 * math.pi / n)
        self.modes = radius * torch.stack([angle.cos(), angle.sin()], 1)  # (n, 2)
        self.std, self.shape = float(std), (2,)


class Grid(Mixture):
    def __init__(self, side: int = 5, spacing: float = 2.0, std: float = 0.05, **kw):
        super().__init__(**kw)
        ticks = (torch.arange(side) - (side - 1) / 2) * spacing  # (side,), centred on 0
        self.modes = torch.cartesian_prod(ticks, ticks)  # (side^2, 2)
        self.std, self.shape = float(std), (2,)


class SwissRoll(Toy):
    """2-D swiss roll as in sklearn's make_swiss_roll (x, z columns), scaled by 1/7.5 as in the WGAN-GP toys."""

    def __init__(self, noise: float = 0.25, **kw):
        super().__init__(**kw)
        self.noise, self.shape = float(noise), (2,)

    def sample(self, n, generator):
        dev = generator.device
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, device=dev))  # (n,)
        x = torch.stack([t * t.cos(), t * t.sin()], 1)  # (n, 2)
        return (x + self.noise * torch.randn(n, 2, generator=generator, device=dev)) / 7.5


class Gauss1d(Toy):
    """N(mu, sigma^2) in one dimension: with experiment=critic_w1 its W1 to N(0, 1) has a closed form."""

    def __init__(self, mu: float = 0.0, sigma: float = 1.0, **kw):
        super().__init__(**kw)
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.mu, self.sigma, self.shape = float(mu), float(sigma), (1,)

    def sample(self, n, generator):
        return self.mu + self.sigma * torch.randn(n, 1, generator=generator, device=generator.device)
