"""Adversarial losses: small stateless objects with one signature.

    d(real_logits, fake_logits) -> scalar   loss the critic minimises
    g(fake_logits)              -> scalar   loss the generator minimises
    g(fake_logits, real_logits) -> scalar   the same for a relativistic loss (`pairs = True`): the loop then
                                            scores the real batch in the generator step too

Logits are the raw critic outputs, shape (B,). No loss knows about networks or data.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


class Loss:
    """What a loss is, declared (read by the loop, the config checks and GANModule.logged; never guessed):"""
    #: E[D(real)] - E[D(fake)] estimates the Wasserstein-1 distance (with a Lipschitz-constrained critic): the loop
    #: logs it as train/wasserstein
    estimates_w1 = False
    #: G's loss compares its fakes with real samples (relativistic pairing): g(fake, real), and the loop scores the
    #: real batch in the generator step too
    pairs = False
    #: the logit is the critic's verdict at 0 (D(x) > 0: "real"), as for a logistic or hinge loss: ADA's overfitting
    #: heuristic reads that sign (augment/ada.py)
    signed_logit = False

    def d(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g(self, fake: Tensor) -> Tensor:
        raise NotImplementedError


class Minimax(Loss):
    """Original GAN (Goodfellow et al. 2014): min_G max_D E log D(x) + E log(1 - D(G(z))).

    The generator minimises log(1 - D(G(z))) = -softplus(f): it saturates when D rejects fakes confidently.
    """

    signed_logit = True  # sigmoid(D(x)) is the probability of "real"

    def d(self, real, fake):
        # -log sigmoid(r) = softplus(-r);  -log(1 - sigmoid(f)) = softplus(f)
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g(self, fake):
        return -F.softplus(fake).mean()


class NonSaturating(Minimax):
    """Non-saturating GAN (Goodfellow et al. 2014, sec. 3): G maximises log D(G(z)) instead."""

    def g(self, fake):
        return F.softplus(-fake).mean()


class LeastSquares(Loss):
    """LSGAN (Mao et al. 2017): D pulls real to b and fake to a; G pulls fake to c.

    Defaults a=0, b=1, c=1 are the paper's 0-1 coding (its Eq. 9); a=-1, b=1, c=0 gives the Pearson chi^2 form.
    """

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0):
        self.a, self.b, self.c = a, b, c

    def d(self, real, fake):
        return 0.5 * ((real - self.b) ** 2).mean() + 0.5 * ((fake - self.a) ** 2).mean()

    def g(self, fake):
        return 0.5 * ((fake - self.c) ** 2).mean()


class Wasserstein(Loss):
    """WGAN (Arjovsky et al. 2017): the critic maximises E D(x) - E D(G(z)), the dual form of W1."""

    estimates_w1 = True

    def d(self, real, fake):
        return fake.mean() - real.mean()

    def g(self, fake):
        return -fake.mean()


class Hinge(Loss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): margin 1 on both sides for D, linear for G."""

    signed_logit = True  # the margins sit at -1 and +1 around the verdict 0

    def d(self, real, fake):
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g(self, fake):
        return -fake.mean()


class RelativisticPairing(Loss):
    """RpGAN (Jolicoeur-Martineau 2019, "The relativistic discriminator"; the loss of R3GAN, Huang et al. 2024):
    each real sample is paired with a fake one and D scores which of the two is real,
    L_D = E softplus(-(D(x) - D(G(z)))),  L_G = E softplus(-(D(G(z)) - D(x))).
    Pairs are the i-th real and i-th fake of the batch, as in R3GAN's official code (brownvc/R3GAN,
    R3GAN/Trainer.py: RelativisticLogits = RealLogits - FakeLogits, softplus(-RelativisticLogits)); in the
    generator step the real logits carry no gradient to G (R3GAN detaches the real samples)."""

    pairs = True

    def d(self, real, fake):
        return F.softplus(-(real - fake)).mean()

    def g(self, fake, real=None):
        if real is None:
            raise ValueError("loss=rpgan scores each fake against a real sample: g(fake, real) needs the real logits")
        return F.softplus(-(fake - real)).mean()
