"""Mode coverage on Gaussian mixtures (the VEEGAN / PacGAN protocol on ring8 and grid25).

A sample is high quality (HQ) when it lies within `k` standard deviations of its nearest mode. A mode is
covered when at least `min_count` HQ samples fall on it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .registry import Data, register

if TYPE_CHECKING:
    from .suite import Evaluation


def mode_coverage(samples: Tensor, modes: Tensor, std: float, k: float = 3.0,
                  min_count: int = 1) -> dict[str, float]:
    """samples (N, D), modes (K, D) -> {"modes": covered count, "hq": fraction of HQ samples}."""
    d = torch.cdist(samples.float(), modes.to(samples).float())  # (N, K)
    dist, nearest = d.min(dim=1)  # (N,), (N,)
    hq = dist <= k * std  # (N,)
    counts = torch.bincount(nearest[hq], minlength=len(modes))  # (K,)
    return {"modes": float((counts >= min_count).sum()), "hq": float(hq.float().mean())}


@register(data=Data.MIXTURE, higher={"modes": True, "hq": True}, order=10)
def suite_modes(ev: Evaluation) -> dict[str, float]:
    """Around the data module's modes (K, D), at its per-mode std."""
    dm = ev.suite.dm
    return mode_coverage(ev.points, dm.modes.cpu(), dm.std, ev.suite.k, ev.suite.min_count)
