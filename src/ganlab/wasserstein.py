"""The Wasserstein-1 (earth mover's) distance: closed forms for checking what critics estimate, and the exact
distance between sample sets (val/w1 on toy data)."""
from __future__ import annotations

import math

import numpy as np


def emd_histograms(p, q, bin_width: float = 1.0) -> float:
    """W1 between two histograms on the same equally spaced bins: sum_i |CDF_p(i) - CDF_q(i)| * width.

    p and q are non-negative masses of equal total. E.g. P=(3,2,1,4), Q=(1,2,4,3): the cumulative differences
    are (2, 2, -1, 0): 2 units cross the first bin boundary, 2 the second, 1 comes back across the third -> 5.
    """
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError("p and q must be 1-D histograms of the same length")
    if (p < 0).any() or (q < 0).any() or not np.isclose(p.sum(), q.sum()):
        raise ValueError("p and q must be non-negative with equal total mass")
    return float(np.abs(np.cumsum(p - q)).sum() * bin_width)


def gaussian_w1(mu: float, sigma: float, mu0: float = 0.0, sigma0: float = 1.0) -> float:
    """Exact W1 between N(mu, sigma^2) and N(mu0, sigma0^2) in one dimension.

    In 1-D, W1 = int_0^1 |F^-1(u) - G^-1(u)| du. Both quantile functions are affine in z = Phi^-1(u), so
    W1 = E|a + b Z| with a = mu - mu0, b = sigma - sigma0, Z ~ N(0, 1): the mean of a folded normal,
        W1 = |b| sqrt(2/pi) exp(-a^2 / 2b^2) + a (1 - 2 Phi(-a/|b|)),   and W1 = |a| when b = 0.
    The often quoted |a| + |b| sqrt(2/pi) (or |a| + |b|) is only an upper bound (triangle inequality);
    it is exact when sigma = sigma0 (b = 0) or mu = mu0 (a = 0, W1 = |b| sqrt(2/pi)).
    """
    a, b = mu - mu0, abs(sigma - sigma0)
    if b == 0.0:
        return abs(a)
    phi = 0.5 * (1.0 + math.erf((-a / b) / math.sqrt(2.0)))  # Phi(-a/b)
    return b * math.sqrt(2.0 / math.pi) * math.exp(-a * a / (2.0 * b * b)) + a * (1.0 - 2.0 * phi)


def emd_samples(a, b) -> float:
    """Exact W1 between the empirical distributions of two sample sets (N, D) and (M, D), uniform weights:
    the optimal transport (earth mover's) cost with Euclidean ground cost, solved by POT's network simplex.
    Memory and time grow as N * M: a few thousand points each (the toy protocols use 2,500)."""
    import ot  # POT

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) sample sets of the same D, got {a.shape} and {b.shape}")
    cost = ot.dist(a, b, metric="euclidean")  # (N, M)
    return float(ot.emd2(np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b)), cost, numItermax=10**7))
