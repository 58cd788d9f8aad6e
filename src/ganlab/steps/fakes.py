"""Where a step's fakes come from (model.reuse_fakes).

By default each step draws its own batch: the critic step runs G under no_grad, G's step runs it again with its
graph. With model.reuse_fakes the last critic step of an iteration runs G with its graph and keeps (latent, fakes),
and G's step scores those fakes with the critic as that step left it, as PyTorch's DCGAN example trains: one G
forward per iteration instead of two (with n_critic > 1, the earlier critic steps still draw under no_grad). On
CUDA fast.py runs such steps eagerly: a captured G step would replay a backward through the critic graph's
activations.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..module import GANModule, Latent


class Fakes:
    def __init__(self, reuse: bool):
        self.reuse = bool(reuse)
        self.kept: tuple[Latent, Tensor] | None = None  # the critic step's, with G's graph, until G's step

    def for_critic(self, m: GANModule, n: int, y: Tensor | None) -> tuple[Latent, Tensor]:
        """n fakes (n, *shape), detached, and their latent; kept for G's step at an iteration's last critic step."""
        keep = self.reuse and m.trains_g and (m.d_steps + 1) % m.n_critic == 0
        with torch.set_grad_enabled(keep):
            latent = m.latent(n, y)
            fake = m.generator(*latent)  # (n, *shape)
        self.kept = (latent, fake) if keep else None
        return latent, fake.detach()

    def for_generator(self, m: GANModule, n: int, y: Tensor | None) -> tuple[Latent, Tensor]:
        """The kept fakes (n, *shape) and their latent, else n new ones, with G's graph."""
        if self.kept is not None:
            (latent, fake), self.kept = self.kept, None
            return latent, fake
        latent = m.latent(n, y)
        return latent, m.generator(*latent)
