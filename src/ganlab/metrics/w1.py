"""W1 of toy samples: the exact earth mover's distance (POT, ganlab/wasserstein.py) between the Suite's `toy_n`
samples and as many real points, each point of weight 1/n and Euclidean ground cost."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..wasserstein import emd_samples
from .registry import Data, register

if TYPE_CHECKING:
    from .suite import Evaluation


@register(data=Data.TOY, higher={"w1": False}, order=20)
def suite_w1(ev: Evaluation) -> dict[str, float]:
    real = ev.suite.dm.real(ev.suite.n).float().cpu()  # (n, D)
    return {"w1": emd_samples(ev.points.numpy(), real.numpy())}
