"""BEGAN (Berthelot, Schumm & Metz 2017): an auto-encoder critic (nets/autoencoder.py, L1 energies L(x) = the
per-sample mean |x - D(x)|) whose balance with G is held by a proportional controller k_t:

    D minimises  L(x) - k_t L(G(z))
    G minimises  L(G(z))
    k_{t+1}    = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1),   k_0 = 0
    M_global   = L(x) + |gamma L(x) - L(G(z))|                         (the paper's convergence measure)

gamma = E[L(G(z))] / E[L(x)] is the equilibrium's diversity ratio: lower gamma, sharper but less varied images.
k_t is a buffer of the module (in every checkpoint's state dict, so a resumed run continues it exactly). It moves
after each critic step that was taken (a skipped non-finite step leaves it as it was), from that step's batch
means of L(x) and L(G(z)), averaged over the ranks under DDP so every rank holds the same k_t.
Logged: train/k (the k_t each critic step used), train/m_global, train/energy_real, train/energy_fake.
"""
from __future__ import annotations


import torch
from torch import Tensor, nn

from ..logged import Logged
from ..module import GANModule, Latent
from ..steps.nonfinite import Net
from .ebgan import check_energy_critic


def k_step(k: Tensor, l_real: Tensor, l_fake: Tensor, gamma: float, lambda_k: float) -> Tensor:
    """The controller's update: clip(k + lambda_k (gamma L(x) - L(G(z))), 0, 1)."""
    return (k + lambda_k * (gamma * l_real - l_fake)).clamp(0.0, 1.0)


def m_global(l_real: Tensor, l_fake: Tensor, gamma: float) -> Tensor:
    """The convergence measure L(x) + |gamma L(x) - L(G(z))|: low when D reconstructs data well (first term) and
    the equilibrium E[L(G(z))] = gamma E[L(x)] holds (second term)."""
    return l_real + (gamma * l_real - l_fake).abs()


class BEGAN(GANModule):
    LOGS = {**{name: Logged(Net.CRITIC) for name in ("d_loss", "k", "m_global", "energy_real", "energy_fake")},
            "g_loss": Logged(Net.GENERATOR)}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: None = None, *args,
                 gamma: float = 0.5, lambda_k: float = 0.001, **kwargs):
        check_energy_critic(discriminator, loss, kwargs, "began")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1] (the ratio E[L(G(z))] / E[L(x)] held), got {gamma}")
        if lambda_k < 0:
            raise ValueError(f"lambda_k must be >= 0 (the controller's gain; 0 freezes k at 0), got {lambda_k}")
        super().__init__(generator, discriminator, loss, *args, **kwargs)
        self.gamma, self.lambda_k = float(gamma), float(lambda_k)
        self.register_buffer("k", torch.zeros(()))  # k_t, a scalar; k_0 = 0 as in the paper
        self._balance: Tensor | None = None  # (2,) detached (L(x), L(G(z))) of the critic step in progress

    def d_objective(self, real: dict[str, Tensor], fake: dict[str, Tensor], y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        l_real, l_fake = real["energy"].mean(), fake["energy"].mean()  # (B,) -> ()
        loss = l_real - self.k * l_fake
        self._balance = torch.stack([l_real, l_fake]).detach()  # consumed by after_critic_step
        return loss, self.logs(d_loss=loss, k=self.k.clone(), m_global=m_global(l_real, l_fake, self.gamma),
                               energy_real=l_real, energy_fake=l_fake)

    def g_objective(self, fake: dict[str, Tensor], real: Tensor, y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        loss = fake["energy"].mean()
        return loss, self.logs(g_loss=loss)

    @torch.no_grad()
    def after_critic_step(self) -> None:
        """k_t -> k_{t+1} from the critic step just taken; L(x), L(G(z)) averaged over ranks (one all-reduce)."""
        l_real, l_fake = self.trainer.strategy.reduce(self._balance, reduce_op="mean")
        self.k.copy_(k_step(self.k, l_real, l_fake, self.gamma, self.lambda_k))
        self._balance = None
