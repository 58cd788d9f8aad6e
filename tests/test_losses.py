"""Each adversarial loss on hand-computed logits, and the gradient property that tells minimax from NS."""
import math

import pytest
import torch

from ganlab.losses import Hinge, LeastSquares, Minimax, NonSaturating, Wasserstein

from .conftest import configured

t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731


def test_minimax_and_non_saturating_on_known_probabilities():
    real, fake = t(math.log(3.0)), t(math.log(1 / 3))  # D(real) = 0.75, D(fake) = 0.25
    d = -math.log(0.75) - math.log(1 - 0.25)
    for loss in (Minimax(), NonSaturating()):
        assert loss.d(real, fake).item() == pytest.approx(d)
    assert Minimax().g(fake).item() == pytest.approx(math.log(1 - 0.25))  # G minimises log(1 - D(G(z)))
    assert NonSaturating().g(fake).item() == pytest.approx(-math.log(0.25))  # G minimises -log D(G(z))
    assert Minimax().d(t(0.0), t(0.0)).item() == pytest.approx(2 * math.log(2))


def test_minimax_saturates_where_non_saturating_does_not():
    """When D confidently rejects fakes (logit -10), the minimax G gradient vanishes, NS's does not."""
    grads = {}
    for loss in (Minimax(), NonSaturating()):
        f = t(-10.0).requires_grad_()
        loss.g(f).backward()
        grads[type(loss).__name__] = f.grad.item()
    assert abs(grads["Minimax"]) < 1e-4  # -sigmoid(-10) ~ -4.5e-5
    assert grads["NonSaturating"] == pytest.approx(-1.0, abs=1e-4)  # -(1 - sigmoid(-10))


def test_least_squares_both_codings():
    real, fake = t(2.0), t(0.5)
    ls = LeastSquares()  # a=0, b=1, c=1
    assert ls.d(real, fake).item() == pytest.approx(0.5 * 1.0 + 0.5 * 0.25)
    assert ls.g(fake).item() == pytest.approx(0.5 * 0.25)
    chi2 = LeastSquares(a=-1.0, b=1.0, c=0.0)
    assert chi2.d(real, fake).item() == pytest.approx(0.5 * 1.0 + 0.5 * 1.5**2)
    assert chi2.g(fake).item() == pytest.approx(0.5 * 0.25)


def test_wasserstein_and_hinge():
    real, fake = t(1.0, 3.0), t(0.0, 2.0)
    assert Wasserstein().d(real, fake).item() == pytest.approx(1.0 - 2.0)
    assert Wasserstein().g(fake).item() == pytest.approx(-1.0)
    assert Wasserstein.estimates_w1 and not Hinge.estimates_w1
    real, fake = t(0.5, 2.0), t(-2.0, 0.5)
    assert Hinge().d(real, fake).item() == pytest.approx((0.5 + 0.0) / 2 + (0.0 + 1.5) / 2)
    assert Hinge().g(fake).item() == pytest.approx(0.75)


@pytest.mark.parametrize("name, cls", configured("loss").items())
def test_a_loss_declares_a_signed_logit_exactly_when_its_critic_reads_the_sign(name, cls):
    """signed_logit (ADA reads sign(D(x))): the critic's loss treats a real logit r and a fake logit f as mirror
    images around 0, d(r, f) = d(-f, -r), and moving both by the same amount changes it (a zero point). WGAN and
    RpGAN are mirror-symmetric but shift-invariant (no zero point); LSGAN's 0-1 coding is centred at 1/2."""
    loss = cls()
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, generator=g, dtype=torch.float64), torch.randn(64, generator=g, dtype=torch.float64)
    mirror = torch.allclose(loss.d(real, fake), loss.d(-fake, -real))
    shifted = not torch.allclose(loss.d(real + 0.7, fake + 0.7), loss.d(real, fake))
    assert cls.signed_logit == (mirror and shifted), name
