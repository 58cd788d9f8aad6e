"""Class coverage of generated images under the domain classifier (labelled data; stacked data's 1,000
class triples as in Unrolled GAN / VEEGAN / PacGAN).

covered: classes predicted for at least `min_count` samples. kl: KL(p_gen || uniform) in nats, where p_gen
is the histogram of predicted classes - 0 for a generator that spreads evenly over the classes, log K when
it collapses onto one class. (The real data's classes are balanced in these sets.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .registry import Data, register

if TYPE_CHECKING:
    from .suite import Evaluation


def class_coverage(labels: Tensor, num_classes: int, min_count: int = 1) -> dict[str, float]:
    """labels (N,) predicted classes in [0, num_classes) -> {"covered": count, "kl": KL to uniform}."""
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).double()  # (K,)
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * (p[nz] * num_classes).log()).sum())
    return {"covered": float((counts >= min_count).sum()), "kl": kl}


@register(data=Data.LABELLED, higher={"classes": True, "class_kl": False}, order=30)
def suite_classes(ev: Evaluation) -> dict[str, float]:
    """Of the classes the domain classifier predicts for the samples."""
    cov = class_coverage(ev.predicted, ev.suite.dm.num_classes, ev.suite.min_count)
    return {"classes": cov["covered"], "class_kl": cov["kl"]}
