"""Critic regularizers: small objects the loop calls at fixed points of a critic step.

Each has `weight` and `every` (lazy regularization: applied every k-th critic step with weight x k, as in
StyleGAN2), and declares in `adds` which of four hooks it has (the loop calls only those):

    perturb(x, step, ranks)                     -> x       on every critic input (real and fake) before D, and
                                                           on G's fakes
    penalty(D, real, fake, step, ranks, scaler) -> scalar  added to the critic loss (already weighted)
    output_penalty(real_logits, fake_logits, step) -> scalar  the same from the outputs D already gave, (B,) each
    after_step(D)                                          after the critic's optimizer step

A regularizer with state across steps (LeCam's averages) gives it in `state_dict()`; the checkpoint keeps it.

`ranks` (ranks.py) draws their randomness as this rank's block of a global draw, so DDP ranks differ.

`scaler` is fp16's loss scaler (torch.amp.GradScaler, Lightning's `trainer.precision_plugin.scaler`), None
otherwise. The penalties on input gradients (GP, R1) need it: under fp16 autocast the inner gradient of D's
output underflows (fp16's smallest subnormal is 6e-8; half of it rounds to 0), so it is taken of the scaled
output and divided by the scale in fp32 (PyTorch's AMP examples, "gradient penalty"). A scale too large makes
the penalty inf; the loop then drops the step and lowers the scale (module.py).

Spectral normalization is not here: it is a property of the network (`spectral_norm` flag of the nets).
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import Flag, auto

import torch
from hydra.utils import get_class
from torch import Tensor, nn

from .ranks import Ranks


class Adds(Flag):
    """What a regularizer adds to a critic step: the hooks of it that the loop calls."""
    NOTHING = 0
    PERTURBATION = auto()  # perturb: every critic input, real and fake (instance noise)
    PENALTY = auto()  # penalty: a term of the critic's loss from D's input gradients (GP, R1, R2)
    OUTPUT_PENALTY = auto()  # output_penalty: a term of the critic's loss from the logits D gave (LeCam)
    AFTER_STEP = auto()  # after_step: acts on D after its optimizer step (weight clipping)


class Regularizer:
    #: the hooks this regularizer has (Adds); a hook it does not declare is never called
    adds = Adds.NOTHING
    #: True for penalties on per-sample input gradients (GP, R1): invalid with BatchNorm in the critic.
    per_sample = False
    #: why critic steps with it cannot be captured in CUDA graphs (fast.py), None when they can
    not_capturable: str | None = None

    def __init__(self, weight: float = 1.0, every: int = 1):
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.weight, self.every = float(weight), int(every)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def perturb(self, x: Tensor, step: int, ranks: Ranks = Ranks()) -> Tensor:
        return x

    def penalty(self, critic: nn.Module, real: Tensor, fake: Tensor, step: int, ranks: Ranks = Ranks(),
                scaler: torch.amp.GradScaler | None = None) -> Tensor | None:
        return None

    def output_penalty(self, real: Tensor, fake: Tensor, step: int) -> Tensor | None:
        return None

    def after_step(self, critic: nn.Module) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def penalties(cfg: Mapping) -> list[str]:
    """The configured regularizers that add a term to the critic's loss (logged as train/<name>)."""
    return [name for name, node in (cfg.get("regularizer") or {}).items()
            if get_class(node["_target_"]).adds & (Adds.PENALTY | Adds.OUTPUT_PENALTY)]


def critic_penalties(regularizers: Mapping[str, Regularizer], step: int, critic, real: Tensor, fake: Tensor,
                     real_logits: Tensor, fake_logits: Tensor, ranks: Ranks,
                     scaler: torch.amp.GradScaler | None) -> dict[str, Tensor]:
    """name -> the term each regularizer due at critic step `step` adds to the critic's loss: a penalty on D's
    input gradients (`critic`: x -> D's outputs) on the (perturbed) batches, or on the logits D gave, (B,) each
    (None before LeCam's start: nothing added)."""
    terms = {}
    for name, reg in regularizers.items():
        if not reg.due(step):
            continue
        if Adds.PENALTY in reg.adds:
            terms[name] = reg.penalty(critic, real, fake, step, ranks, scaler)
        elif Adds.OUTPUT_PENALTY in reg.adds:
            terms[name] = reg.output_penalty(real_logits, fake_logits, step)
    return {name: term for name, term in terms.items() if term is not None}


def _grad_norm(critic: nn.Module, x: Tensor, scaler: torch.amp.GradScaler | None = None) -> Tensor:
    """Per-sample ||dD(x)/dx||_2, shape (B,), in fp32, differentiable (create_graph) for the double backward.
    With a scaler (fp16; an enabled one, as GANModule.loss_scaler gives) the gradient is taken of the scaled
    output, then unscaled in fp32: no host sync."""
    x = x.detach().requires_grad_(True)
    out = critic(x)["logits"].sum()  # sum over the batch (B,): each sample's gradient is its own
    if scaler is not None:
        out = scaler.scale(out)
    (grad,) = torch.autograd.grad(out, x, create_graph=True)
    with torch.autocast(x.device.type, enabled=False):
        grad = grad.flatten(1).float()
        if scaler is not None:
            grad = grad / scaler.scale(torch.ones((), device=grad.device))  # the scale, (): 1 x scale, no sync
        return grad.norm(2, dim=1)


class GradientPenalty(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017): lambda * E (||grad D(x_hat)|| - 1)^2, x_hat uniform on real-fake lines.

    one_sided=True penalises only norms above 1: lambda * E max(0, ||grad|| - 1)^2 (the paper's appendix variant).
    """

    adds = Adds.PENALTY
    per_sample = True

    def __init__(self, weight: float = 10.0, every: int = 1, one_sided: bool = False):
        super().__init__(weight, every)
        self.one_sided = one_sided

    def penalty(self, critic, real, fake, step, ranks=Ranks(), scaler=None):
        eps = ranks.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)  # (B,1,..)
        x_hat = eps * real.detach() + (1 - eps) * fake.detach()
        gap = _grad_norm(critic, x_hat, scaler) - 1.0
        if self.one_sided:
            gap = gap.clamp(min=0.0)
        return self.weight * self.every * gap.pow(2).mean()


class R1(Regularizer):
    """R1 (Mescheder et al. 2018): gamma/2 * E_real ||grad D(x)||^2. `every`=16 is StyleGAN2's lazy interval."""

    adds = Adds.PENALTY
    per_sample = True

    def penalty(self, critic, real, fake, step, ranks=Ranks(), scaler=None):
        return 0.5 * self.weight * self.every * _grad_norm(critic, real, scaler).pow(2).mean()


class R2(Regularizer):
    """R2 (Mescheder et al. 2018; with R1 in R3GAN, Huang et al. 2024): gamma/2 * E_fake ||grad D(x)||^2, the
    zero-centred penalty on generated samples (R3GAN's R2Penalty: its Trainer.py, on the fake batch)."""

    adds = Adds.PENALTY
    per_sample = True

    def penalty(self, critic, real, fake, step, ranks=Ranks(), scaler=None):
        return 0.5 * self.weight * self.every * _grad_norm(critic, fake, scaler).pow(2).mean()


class LeCam(Regularizer):
    """LeCam regularization (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited
    Data"), as its official code computes it (google/lecam-gan, biggan_cifar/losses.py `lecam_reg` and
    third_party/utils.py `ema_losses`):

        weight * [ E relu(D(x) - alpha_F)^2 + E relu(alpha_R - D(G(z)))^2 ],

    alpha_R, alpha_F: moving averages (decay 0.9) of the mean critic output on real and on fake batches, updated
    at every critic step before the penalty. For the first `start` critic steps the averages follow the current
    means (decay 0) and no penalty is added (the code's start_itr=1000 iterations of 4 critic steps). Under DDP
    the means are averaged over the ranks first, so every rank keeps the same alphas. Defaults: the official
    BigGAN CIFAR-10 script (scripts/lc-biggan-cifar10.sh: --LC 0.3)."""

    adds = Adds.OUTPUT_PENALTY
    not_capturable = "keeps its moving averages on the host, read back every critic step"

    def __init__(self, weight: float = 0.3, decay: float = 0.9, start: int = 1000):
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        super().__init__(weight, every=1)
        self.decay, self.start = float(decay), int(start)
        self.alpha_real: float | None = None  # moving averages of mean D(x), mean D(G(z)); None before the first
        self.alpha_fake: float | None = None

    def output_penalty(self, real, fake, step):
        means = torch.stack([real.detach().float().mean(), fake.detach().float().mean()])  # (2,)
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(means)
            means /= torch.distributed.get_world_size()
        mean_real, mean_fake = means.tolist()  # one host sync per critic step
        decay = self.decay if step >= self.start and self.alpha_real is not None else 0.0
        self.alpha_real = mean_real if self.alpha_real is None else decay * self.alpha_real + (1 - decay) * mean_real
        self.alpha_fake = mean_fake if self.alpha_fake is None else decay * self.alpha_fake + (1 - decay) * mean_fake
        if step < self.start:
            return None
        return self.weight * (torch.relu(real - self.alpha_fake).pow(2).mean()
                              + torch.relu(self.alpha_real - fake).pow(2).mean())

    def state_dict(self) -> dict:
        return {"alpha_real": self.alpha_real, "alpha_fake": self.alpha_fake}

    def load_state_dict(self, state: dict) -> None:
        self.alpha_real, self.alpha_fake = state["alpha_real"], state["alpha_fake"]


class WeightClipping(Regularizer):
    """WGAN (Arjovsky et al. 2017, Algorithm 1): clamp every critic parameter to [-c, c] after each step."""

    adds = Adds.AFTER_STEP

    def __init__(self, c: float = 0.01):
        if c <= 0:
            raise ValueError(f"clip c must be > 0, got {c}")
        super().__init__(weight=1.0, every=1)
        self.c = float(c)

    @torch.no_grad()
    def after_step(self, critic):
        for p in critic.parameters():
            p.clamp_(-self.c, self.c)


class InstanceNoise(Regularizer):
    """Instance noise (Sonderby et al. 2017; Arjovsky & Bottou 2017): x + N(0, sigma_t^2) for every D input.

    sigma_t anneals linearly from `sigma` to 0 over `anneal_steps` critic steps (0 keeps it constant).
    """

    adds = Adds.PERTURBATION

    def __init__(self, sigma: float = 0.1, anneal_steps: int = 0):
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {anneal_steps}")
        super().__init__()
        self.sigma, self.anneal_steps = float(sigma), int(anneal_steps)
        if self.anneal_steps:  # a graph would replay the sigma it was captured with
            self.not_capturable = "anneals its sigma on the host every step (anneal_steps=0 can be captured)"

    def sigma_at(self, step: int) -> float:
        if self.anneal_steps == 0:
            return self.sigma
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)

    def perturb(self, x, step, ranks=Ranks()):
        s = self.sigma_at(step)
        return x + s * ranks.randn(*x.shape, device=x.device, dtype=x.dtype) if s > 0 else x
