"""Regularizers on a linear critic D(x) = w.x + b, whose input gradient is w everywhere."""
import pytest
import torch
from torch import nn

from ganlab.regularizers import R1, GradientPenalty, InstanceNoise, WeightClipping

from .conftest import configured


class LinearCritic(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.lin = nn.Linear(len(w), 1).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([w], dtype=torch.float64))

    def forward(self, x, y=None):
        return {"logits": self.lin(x.flatten(1)).squeeze(1)}


def batch(n=16, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("w, two_sided, one_sided", [((3.0, 4.0), 10 * 16.0, 10 * 16.0), ((0.3, 0.4), 10 * 0.25, 0.0)])
def test_gradient_penalty_of_linear_critic(w, two_sided, one_sided):
    real, fake = batch()
    critic = LinearCritic(w)
    assert GradientPenalty(10.0).penalty(critic, real, fake, 0).item() == pytest.approx(two_sided)
    assert GradientPenalty(10.0, one_sided=True).penalty(critic, real, fake, 0).item() == pytest.approx(one_sided)


def test_gradient_penalty_backpropagates_to_critic_weights():
    """d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||: the double backward reaches the weights."""
    real, fake = batch()
    critic = LinearCritic((3.0, 4.0))
    GradientPenalty(10.0).penalty(critic, real, fake, 0).backward()
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    expected = 2 * 10.0 * (5.0 - 1.0) * w / 5.0
    assert torch.allclose(critic.lin.weight.grad[0], expected)


def test_r1_of_linear_critic_and_lazy_weight():
    real, fake = batch()
    critic = LinearCritic((3.0, 4.0))
    assert R1(10.0).penalty(critic, real, fake, 0).item() == pytest.approx(0.5 * 10 * 25.0)
    lazy = R1(10.0, every=16)
    assert lazy.penalty(critic, real, fake, 0).item() == pytest.approx(16 * 0.5 * 10 * 25.0)
    assert [s for s in range(40) if lazy.due(s)] == [0, 16, 32]


def test_weight_clipping_clamps_every_parameter():
    critic = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    WeightClipping(0.01).after_step(critic)
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    with pytest.raises(ValueError, match="c must be > 0"):
        WeightClipping(0.0)


def test_instance_noise_anneals_linearly_to_zero():
    noise = InstanceNoise(sigma=0.2, anneal_steps=100)
    assert [noise.sigma_at(s) for s in (0, 50, 100, 200)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    x = torch.zeros(20000, 2)
    assert noise.perturb(x, 50).std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(noise.perturb(x, 100), x)


@pytest.mark.parametrize("name", sorted(configured("regularizer")))
def test_a_regularizer_declares_the_hooks_it_has(name):
    """The loop calls only the hooks a regularizer declares (Regularizer.adds): an override it does not declare
    would silently never run, a declaration without the override would add nothing."""
    from ganlab.regularizers import Adds, Regularizer

    cls = configured("regularizer")[name]
    hooks = {Adds.PERTURBATION: "perturb", Adds.PENALTY: "penalty", Adds.OUTPUT_PENALTY: "output_penalty",
             Adds.AFTER_STEP: "after_step"}
    for flag, hook in hooks.items():
        assert (flag in cls.adds) == (getattr(cls, hook) is not getattr(Regularizer, hook)), (name, hook)
