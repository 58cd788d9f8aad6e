"""Closed forms of W1: the discrete earth mover's distance and 1-D Gaussians."""
import math

import numpy as np
import pytest
from scipy import stats

from ganlab.wasserstein import emd_histograms, gaussian_w1


def test_emd_of_the_four_bin_example():
    assert emd_histograms([3, 2, 1, 4], [1, 2, 4, 3]) == pytest.approx(5.0)
    assert emd_histograms([3, 2, 1, 4], [3, 2, 1, 4]) == 0.0
    assert emd_histograms([1, 0, 0], [0, 0, 1], bin_width=0.5) == pytest.approx(1.0)  # one unit moved 2 bins


def test_emd_agrees_with_scipy_on_random_histograms():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.random(7), rng.random(7)
        q *= p.sum() / q.sum()
        bins = np.arange(7.0)
        assert emd_histograms(p, q) == pytest.approx(stats.wasserstein_distance(bins, bins, p, q) * p.sum())


def test_emd_rejects_unequal_mass():
    with pytest.raises(ValueError, match="equal total mass"):
        emd_histograms([1, 2], [1, 1])


@pytest.mark.parametrize("mu, sigma", [(2.0, 1.0), (0.0, 3.0), (1.0, 2.0), (-0.5, 0.3), (0.3, 1.5)])
def test_gaussian_w1_equals_the_quantile_integral(mu, sigma):
    """W1 = int_0^1 |F^-1(u) - G^-1(u)| du, integrated numerically on the quantile functions."""
    u = (np.arange(200_000) + 0.5) / 200_000
    numeric = np.abs(stats.norm.ppf(u, mu, sigma) - stats.norm.ppf(u)).mean()
    assert gaussian_w1(mu, sigma) == pytest.approx(numeric, rel=1e-3)


def test_the_simple_formula_is_an_upper_bound_exact_only_when_sigma_is_one():
    assert gaussian_w1(2.0, 1.0) == pytest.approx(2.0)  # sigma = 1: |mu| exactly
    assert gaussian_w1(0.0, 3.0) == pytest.approx(2.0 * math.sqrt(2 / math.pi))  # mu = 0: |sigma-1| sqrt(2/pi)
    w, bound = gaussian_w1(1.0, 2.0), 1.0 + 1.0
    assert w < bound - 0.1  # |mu| + |sigma - 1| over-estimates
