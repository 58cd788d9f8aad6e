"""FID (Heusel et al. 2017) and KID (Binkowski et al. 2018), on any feature network (metrics/features.py), with the
real set's features computed once and cached on disk, and what depends on them alone kept for a run (FidKid).

FID is in float64; KID's kernel values in float32, their sums in float64. Numbers are comparable only for the same
feature network, real set and N; the cache key holds all three. Published FIDs use the Inception network and 50k samples.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..checkpoint_io import write_atomically
from .features import cache_dir, exact_fp32
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


def moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """(N, F) features -> their mean (F,) and unbiased covariance (F, F), float64 (FID's Gaussian)."""
    f = features.double()
    mu = f.mean(0)  # (F,)
    centred = f - mu  # (N, F)
    return mu, centred.T @ centred / (len(f) - 1)


def psd_sqrt(sigma: Tensor) -> Tensor:
    """The symmetric square root of a covariance (F, F), its rounding-negative eigenvalues taken as 0."""
    eigenvalues, vectors = torch.linalg.eigh(sigma)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def poly_kernel_sums(x: Tensor, y: Tensor, same: bool) -> Tensor:
    """The float64 sum of KID's kernel k(a, b) = (a.b / F + 1)^3 over the pairs of rows of x (m, F) and y (m, F),
    without the diagonal when `same` (x is y). Each kernel value in float32 (rounding errors that average out over
    the m^2 terms), their sums in float64 (KID is a small difference of such sums)."""
    k = (x @ y.T).div_(x.shape[1]).add_(1.0)  # (m, m) float32
    k.pow_(3)
    total = k.sum(dtype=torch.float64)
    return total - k.diagonal().sum(dtype=torch.float64) if same else total


class FidKid:
    """FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) of generated feature sets (N, F) against one real
    set, as a run evaluates them again and again: what depends on the real set alone is computed once.

    - FID = |mu_r - mu_g|^2 + tr S_r + tr S_g - 2 tr sqrt(S_r^1/2 S_g S_r^1/2), float64. The real moments and
      S_r^1/2 are kept; tr sqrt(S_r S_g) comes from the eigenvalues of a symmetric matrix (eigvalsh), which equal
      those of torchmetrics' S_r S_g (eigvals of a non-symmetric matrix, several times slower).
    - KID: the unbiased polynomial-kernel MMD^2 averaged over `subsets` random subsets of m = min(kid_subset, N_r,
      N_g) per set, drawn as torchmetrics' KernelInceptionDistance draws them (per subset a randperm of the real set,
      then of the generated set) from `seed` in a forked RNG: the same subsets every evaluation, so the real-real
      kernel sums are kept too, and training's random stream is left as it was. Kernel values in float32, their
      sums in float64.
    Both agree with torchmetrics on float64 features (tests/test_metrics.py pins them). Everything is computed on
    `device` (default: the real features'); the subsets are drawn on the CPU, as torchmetrics draws them."""

    def __init__(self, real: Tensor, kid_subset: int = 1000, seed: int = 0, subsets: int = 100,
                 device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else real.device
        real = real.to(self.device)
        self.real32 = real.float()  # (N_r, F)
        with exact_fp32(self.device):
            self.mu, sigma = moments(real)  # (F,), (F, F) float64
            self.trace, self.root = sigma.trace(), psd_sqrt(sigma)
        self.kid_subset, self.seed, self.subsets = int(kid_subset), seed, subsets
        self.real_sums: dict[tuple[int, int], list[Tensor]] = {}  # (N_g, m) -> the real subsets' kernel sums

    def fid(self, fake: Tensor) -> float:
        mu, sigma = moments(fake.to(self.device))
        eigenvalues = torch.linalg.eigvalsh(self.root @ sigma @ self.root)  # (F,) those of S_r S_g
        cross = eigenvalues.clamp(min=0).sqrt().sum()
        return float((self.mu - mu).square().sum() + self.trace + sigma.trace() - 2 * cross)

    def kid(self, fake: Tensor) -> float:
        n_real, n_fake = len(self.real32), len(fake)
        m = min(self.kid_subset, n_real, n_fake)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            draws = [(torch.randperm(n_real)[:m].to(self.device), torch.randperm(n_fake)[:m].to(self.device))
                     for _ in range(self.subsets)]
        kept = self.real_sums.get((n_fake, m))
        if kept is None:
            kept = self.real_sums[(n_fake, m)] = [poly_kernel_sums(self.real32[r], self.real32[r], True)
                                                  for r, _ in draws]
        fake32 = fake.to(self.device).float()  # (N_g, F)
        mmd = []
        for (r, g), xx in zip(draws, kept):
            x, y = self.real32[r], fake32[g]  # (m, F) each
            xy, yy = poly_kernel_sums(x, y, False), poly_kernel_sums(y, y, True)
            mmd.append((xx + yy) / (m * (m - 1)) - 2 * xy / m ** 2)
        return float(torch.stack(mmd).mean())

    def __call__(self, fake: Tensor) -> dict[str, float]:
        with exact_fp32(self.device):  # no TF32 in KID's float32 products on a GPU, no autocast
            return {"fid": self.fid(fake), "kid": self.kid(fake)}


def fid_kid(real: Tensor, fake: Tensor, kid_subset: int = 1000, seed: int = 0) -> dict[str, float]:
    """FID and KID between two feature sets (N, F), once (FidKid keeps the real set's part for a run)."""
    return FidKid(real, kid_subset, seed)(fake)


@register(data=Data.IMAGES, higher={"fid": False, "kid": False}, order=10)
def suite_fid_kid(ev: Evaluation) -> dict[str, float]:
    """fid and kid of the samples' features against the real set's (Suite: both embedded by its feature network);
    the real set's part is computed on the run's first evaluation and kept."""
    return ev.keep("fid_kid", lambda: FidKid(ev.real(), ev.suite.kid_subset, device=ev.suite.device))(ev.fake)
