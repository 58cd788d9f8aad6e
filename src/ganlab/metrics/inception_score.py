"""Inception Score (Salimans et al. 2016) through torchmetrics: it needs the Inception network's class
logits, which the FID network (pool features only) lacks, so it runs only on a weights file the user
supplies: torch-fidelity's Inception-v3 weights (the TF release the Inception Score paper used, 1008 classes;
the file name is in the error below and docs/metrics.md), passed as `metrics.is_weights=PATH`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchmetrics.image.fid import NoTrainInceptionV3
from torchmetrics.image.inception import InceptionScore

from .registry import Data, register

if TYPE_CHECKING:
    from .suite import Evaluation


class InceptionScorer:
    def __init__(self, weights: str | Path, splits: int = 10):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"metrics.is_weights: no file at {path}; the Inception Score needs torch-fidelity's "
                                    f"weights-inception-2015-12-05-6726825d.pth, or drop metrics.is_weights")
        # torch-fidelity loads the file with weights_only=False; refuse anything but plain tensors first
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"metrics.is_weights: {path} is not a plain state dict of tensors ({e})") from None
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["logits_unbiased"],
                                      feature_extractor_weights_path=str(path))
        self.splits = splits

    @torch.no_grad()
    def __call__(self, images: Tensor, batch_size: int = 100) -> float:
        """uint8 images (N, C, H, W), C in {1, 3} -> the mean Inception Score over `splits` splits."""
        metric = InceptionScore(feature=self.net, splits=self.splits, sync_on_compute=False)  # rank zero alone
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            metric.update(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)
        mean, _ = metric.compute()
        return float(mean)


@register(data=Data.IMAGES, higher={"is": True}, order=20)
def suite_is(ev: Evaluation) -> dict[str, float]:
    """Only with metrics.is_weights (Suite loads the network)."""
    return {} if ev.suite.scorer is None else {"is": ev.suite.scorer(ev.images)}
