"""Classification accuracy of a class-conditional generator (AC-GAN's, Odena et al. 2017): the fraction of
samples the domain classifier puts in the class they were asked for. Only when the Suite is given those classes
(metrics/callback.py, evaluate.py: a generator conditioned on the data's classes)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import Data, register

if TYPE_CHECKING:
    from .suite import Evaluation


@register(data=Data.LABELLED, higher={"class_acc": True}, order=40)
def suite_class_acc(ev: Evaluation) -> dict[str, float]:
    if ev.labels is None:
        return {}
    return {"class_acc": (ev.predicted.cpu() == ev.labels.cpu()).float().mean().item()}
