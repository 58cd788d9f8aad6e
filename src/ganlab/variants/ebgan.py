"""EBGAN (Zhao, Mathieu & LeCun 2017): the critic is an energy function, an auto-encoder whose energy E(x) is its
reconstruction error (nets/autoencoder.py), low on data and pushed up on fakes up to a margin m:

    D minimises  E(x) + max(0, m - E(G(z)))                                  (the paper's Eq. 1, per sample)
    G minimises  E(G(z)) + lambda_pt * PT(S)                                  (Eq. 2, plus the pull-away term)
    PT(S) = 1 / (N (N - 1)) sum_{i != j} cos^2(s_i, s_j)                     (Eq. 5; S = the fakes' codes (N, F))

The pull-away term ("EBGAN-PT") pushes the codes of a batch of fakes towards orthogonality, against mode
collapse; lambda_pt = 0 switches it off. The energy objective replaces the adversarial loss (`loss` is none) and
G's objective replaces feature matching, so model.feature_matching is refused.
Logged: train/energy_real, train/energy_fake (critic step, the batch means of E), train/pt (generator step).
"""
from __future__ import annotations


import torch.nn.functional as F
from torch import Tensor, nn

from ..logged import Logged
from ..module import GANModule, Latent
from ..steps.nonfinite import Net


def pull_away(codes: Tensor) -> Tensor:
    """PT(S) of codes S (N, F): the mean squared cosine similarity over ordered pairs of distinct samples; 0 for
    N < 2 (no pairs)."""
    n = codes.shape[0]
    if n < 2:
        return codes.new_zeros(())
    s = F.normalize(codes.float(), dim=1)  # (N, F), unit rows
    cos2 = (s @ s.T).pow(2)  # (N, N)
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


def check_energy_critic(discriminator: nn.Module, loss, kwargs: dict, model: str) -> None:
    """The auto-encoder variants need a critic returning energies, and replace the adversarial loss and G's
    objective (so neither a loss object nor feature matching has a use)."""
    if not hasattr(discriminator, "distance"):
        raise ValueError(f"model={model} needs an auto-encoder critic that returns energies: use net=autoencoder "
                         f"(got net.d {type(discriminator).__module__}.{type(discriminator).__name__})")
    if loss is not None:
        raise ValueError(f"model={model} has its own energy objective and uses no adversarial loss, got loss "
                         f"{type(loss).__name__}: drop the loss=... override (the preset chooses none)")
    if kwargs.get("feature_matching", False):
        raise ValueError(f"model={model} has its own generator objective: set model.feature_matching=false")


class EBGAN(GANModule):
    LOGS = {"d_loss": Logged(Net.CRITIC), "energy_real": Logged(Net.CRITIC), "energy_fake": Logged(Net.CRITIC),
            "g_loss": Logged(Net.GENERATOR),
            "pt": Logged(Net.GENERATOR, lambda cfg: cfg["model"].get("lambda_pt", 0.1) != 0)}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: None = None, *args,
                 margin: float = 0.128, lambda_pt: float = 0.1, **kwargs):
        check_energy_critic(discriminator, loss, kwargs, "ebgan")
        if margin <= 0:
            raise ValueError(f"margin must be > 0 (the energy D pushes fakes up to), got {margin}")
        if lambda_pt < 0:
            raise ValueError(f"lambda_pt must be >= 0 (0 switches the pull-away term off), got {lambda_pt}")
        super().__init__(generator, discriminator, loss, *args, **kwargs)
        self.margin, self.lambda_pt = float(margin), float(lambda_pt)

    def d_objective(self, real: dict[str, Tensor], fake: dict[str, Tensor], y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        e_real, e_fake = real["energy"], fake["energy"]  # (B,), (B,)
        loss = e_real.mean() + F.relu(self.margin - e_fake).mean()
        return loss, self.logs(d_loss=loss, energy_real=e_real.mean(), energy_fake=e_fake.mean())

    def g_objective(self, fake: dict[str, Tensor], real: Tensor, y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        energy = fake["energy"].mean()
        if self.lambda_pt == 0:
            return energy, self.logs(g_loss=energy)
        pt = pull_away(fake["features"])  # (B, F) -> ()
        loss = energy + self.lambda_pt * pt
        return loss, self.logs(g_loss=loss, pt=pt)
