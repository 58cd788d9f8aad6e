"""FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) through torchmetrics, on any feature network
(metrics/features.py), with the real set's features computed once and cached on disk.

Statistics are in float64. Numbers are comparable only for the same feature network, real set and N; the
cache key holds all three. Published FIDs use the Inception network and 50k samples.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ..checkpoint_io import write_atomically
from .features import cache_dir
from .registry import Data, register

if TYPE_CHECKING:
    from .suite import Evaluation


@torch.no_grad()
def embed(features: nn.Module, images: Tensor, batch_size: int = 200,
          progress: Callable[[int, int], None] | None = None) -> Tensor:
    """uint8 images (N, C, H, W) -> features (N, F) float64, in batches; progress(done, N) after each batch."""
    out = []
    for i in range(0, len(images), batch_size):
        out.append(features(images[i:i + batch_size]).double().cpu())  # (B, F)
        if progress is not None:
            progress(i + len(out[-1]), len(images))
    return torch.cat(out)


class RealFeatures:
    """Features of a real image set, cached at <root>/<key>_<features.name>.pt (root: <cache>/stats); `computed`
    counts actual embeddings. Processes that miss the same file at once (sweep jobs) each embed the set and
    write it whole (checkpoint_io.write_atomically): the file left is one of theirs, with the same values. A
    file that does not load (damaged) is embedded again and replaced, with a warning."""

    def __init__(self, features: nn.Module, root: Path | None = None,
                 progress: Callable[[int, int], None] | None = None):
        self.features, self.root = features, Path(root) if root else cache_dir() / "stats"
        self.progress = progress  # passed to embed
        self.computed = 0

    def get(self, key: str, images: Callable[[], Tensor]) -> Tensor:
        path = self.root / f"{key}_{self.features.name}.pt"
        if path.is_file():
            try:
                return torch.load(path, weights_only=True)
            except Exception as e:  # cut short, not a torch file, ...: the cache is a copy, computed again
                warnings.warn(f"metrics: the cached real statistics {path} do not load ({type(e).__name__}: "
                              f"{e}); computing them again")
        feats = embed(self.features, images(), progress=self.progress)
        self.computed += 1
        write_atomically(path, lambda tmp: torch.save(feats, tmp))
        return feats


class _Precomputed(nn.Module):
    """Lets torchmetrics take features we computed ourselves: its 'images' are already (N, F) features."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim  # torchmetrics reads it instead of probing with a dummy image

    def forward(self, x: Tensor) -> Tensor:
        return x


def fid_kid(real: Tensor, fake: Tensor, kid_subset: int = 1000, seed: int = 0) -> dict[str, float]:
    """FID and KID (mean over subsets) between two feature sets (N, F) through torchmetrics. KID's random subsets
    come from `seed` in a forked RNG: the same number every time for the same features, and training's random
    stream is left as it was."""
    dim = real.shape[1]
    # sync_on_compute=False: one process (rank zero under DDP) scores all N samples; the others never join
    fid = FrechetInceptionDistance(feature=_Precomputed(dim), reset_real_features=False, sync_on_compute=False)
    fid.set_dtype(torch.float64)
    subset = min(kid_subset, len(real), len(fake))
    kid = KernelInceptionDistance(feature=_Precomputed(dim), subset_size=subset, reset_real_features=False,
                                  sync_on_compute=False)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets from torch's global (CPU) RNG
        torch.manual_seed(seed)
        kid_mean, _ = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean)}


@register(data=Data.IMAGES, higher={"fid": False, "kid": False}, order=10)
def suite_fid_kid(ev: Evaluation) -> dict[str, float]:
    """fid and kid of the samples' features against the real set's (Suite: both embedded by its feature network)."""
    return fid_kid(ev.real(), ev.fake, ev.suite.kid_subset)
