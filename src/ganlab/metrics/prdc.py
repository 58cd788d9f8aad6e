"""Image-level fidelity and mode coverage from k-nearest-neighbour balls in a feature space (the FID network's):

- precision, recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
  Models", k = 3): the real manifold is the union of balls around each real feature with radius the distance to
  its k-th nearest real neighbour (the point itself excluded); precision is the fraction of generated features
  inside it. Recall is the same with the roles swapped: the fraction of real features inside the generated
  manifold (balls of k-th-neighbour radius around each generated feature).
- density, coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models", k = 5),
  on the real balls only: density = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))] (how many real balls hold
  each of the M generated points, on average, over k; ~1 when both sets come from one distribution, can exceed
  1); coverage = the fraction of real points whose ball holds at least one generated point.

k is each paper's default. Balls are closed (distance <= radius), as in the precision / recall authors' code
(kynkaat/improved-precision-and-recall-metric, precision_recall.py: `distance_batch <= self.D`); the `prdc`
package (clovaai/generative-evaluation-prdc, prdc/prdc.py) compares with `<`. The two differ only on exact
ties (duplicate features), where `<` would leave a point outside a ball of radius 0 around its own copy.
tests/test_prdc.py checks these functions against the `prdc` package itself.

Cost: the N x N distances between the generated set and itself and between the generated and the real set
(2 N^2 D multiply-adds each, float64, in row chunks of at most 2^24 distances, 128 MB), plus the real set with
itself once per run (Suite keeps the real radii). At N = 10,000 on one CPU thread: ~5 s per evaluation (and
~2 s once) with D = 256 (the domain classifier), ~17 s (and ~9 s once) with D = 2048 (Inception).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .registry import Data, register

if TYPE_CHECKING:
    from .suite import Evaluation

PR_K = 3  # Kynkaanniemi et al. 2019's neighbourhood size for precision / recall
DC_K = 5  # Naeem et al. 2020's for density / coverage
NAMES = ("precision", "recall", "density", "coverage")
MIN_POINTS = max(PR_K, DC_K) + 1  # each point needs k other points of its own set


def _chunk(n_cols: int, chunk: int | None) -> int:
    return chunk or max(1, (1 << 24) // max(n_cols, 1))  # rows per block: at most 2^24 distances at once


def knn_radii(x: Tensor, ks: tuple[int, ...] = (PR_K, DC_K), chunk: int | None = None) -> dict[int, Tensor]:
    """Features (N, F) -> {k: (N,) distance from each point to its k-th nearest neighbour in x, itself excluded}
    (the (k+1)-th smallest of its row of distances, its own 0 the first; a duplicate of it counts as a
    neighbour at distance 0, as in both reference implementations)."""
    if len(x) <= max(ks):
        raise ValueError(f"k-NN radii with k = {max(ks)} need more than {max(ks)} points, got {len(x)}")
    out = {k: [] for k in ks}
    step = _chunk(len(x), chunk)
    for i in range(0, len(x), step):
        d = torch.cdist(x[i:i + step], x)  # (c, N)
        nearest = d.topk(max(ks) + 1, dim=1, largest=False).values  # (c, K+1), ascending
        for k in ks:
            out[k].append(nearest[:, k])
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def prdc(real: Tensor, fake: Tensor, real_radii: dict[int, Tensor] | None = None,
         chunk: int | None = None) -> dict[str, float]:
    """Precision, recall (k = PR_K) and density, coverage (k = DC_K) of fake features (M, F) against real (N, F),
    in float64 on their device; real_radii: knn_radii(real), when the caller keeps them (they depend only on the
    real set)."""
    if min(len(real), len(fake)) < MIN_POINTS:
        raise ValueError(f"precision / recall / density / coverage need at least {MIN_POINTS} real and "
                         f"{MIN_POINTS} generated images (k = {DC_K} neighbours each), got {len(real)} and "
                         f"{len(fake)}")
    real, fake = real.double(), fake.double().to(real.device)
    r_real = real_radii if real_radii is not None else knn_radii(real, (PR_K, DC_K), chunk)
    r_pr, r_dc = r_real[PR_K].to(real.device), r_real[DC_K].to(real.device)  # (N,) each
    r_fake = knn_radii(fake, (PR_K,), chunk)[PR_K]  # (M,)
    in_real = torch.zeros(len(fake), dtype=torch.bool, device=real.device)  # fake j inside some real PR ball
    balls = torch.zeros(len(fake), dtype=torch.float64, device=real.device)  # real DC balls holding fake j
    recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)  # real i inside some fake ball
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)  # real i's DC ball holds a fake
    step = _chunk(len(fake), chunk)
    for i in range(0, len(real), step):
        d = torch.cdist(real[i:i + step], fake)  # (c, M)
        in_real |= (d <= r_pr[i:i + step, None]).any(0)
        balls += (d <= r_dc[i:i + step, None]).sum(0)
        recalled[i:i + step] = (d <= r_fake[None, :]).any(1)
        covered[i:i + step] = d.min(1).values <= r_dc[i:i + step]
    return {"precision": in_real.double().mean().item(), "recall": recalled.double().mean().item(),
            "density": (balls.mean() / DC_K).item(), "coverage": covered.double().mean().item()}


@register(data=Data.IMAGES, higher=dict.fromkeys(NAMES, True), order=50)
def suite_prdc(ev: Evaluation) -> dict[str, float]:
    """On the features of fid / kid; the real set's radii once per Suite."""
    real = ev.real().to(ev.suite.device)  # (n, F)
    radii = ev.keep("prdc radii", lambda: knn_radii(real))
    return prdc(real, ev.fake.to(ev.suite.device), radii)
