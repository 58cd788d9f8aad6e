"""The `fid` case: FID + KID on N generated images (10k) as ganlab's metrics compute them, beside torchmetrics used
well, on the same images and the same feature network.

- ganlab (`GanlabEval`, what metrics/suite.py's Suite.__call__ does for fid and kid): the real set's features come
  from `RealFeatures` (loaded from the disk cache, or embedded once and written there) and a `FidKid` built on them
  on the run's first evaluation keeps what depends on the real set alone (its FID moments and their square root,
  its KID subsets' kernel sums) for the later ones; the generated images are embedded once, in batches.
- plain (`PlainEval`): one `FrechetInceptionDistance` and one `KernelInceptionDistance` with
  `reset_real_features=False` (their real-set state survives `reset()`, so the real set is embedded once per run),
  fed by one feature pass: each batch goes through the network once and its features go to both metrics through a
  pass-through `feature` module (what `torchmetrics.wrappers.FeatureShare` achieves by caching the network's outputs).

Three evaluations, each timed on both sides in ABBA pairs:
- `later`: an evaluation after the run's first (the steady state of a run): both sides hold the real set already and
  embed the N generated images once;
- `first`: the first evaluation of a run, nothing cached: both embed the real set and the generated set;
- `cached`: the first evaluation of a later run or process (a resumed run, evaluate.py, a sweep's next trial, as
  the ~/.cache/ganlab/stats cache key allows): ganlab loads the real features an earlier run wrote to disk,
  torchmetrics, whose state lives in its process, embeds the real set again.
Both sides' FID and KID (same features, KID's subsets drawn from the same seed) must agree (`check_same`), or the
case fails. Networks: the domain classifier (all N) and the FID Inception network (on a CPU timed on `inception_n`
images, marked "est.": the embedding of the other images added at the measured time per image, the statistics as
timed on `inception_n`; see Comparison.at).
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ..data.idx import IdxImages
from ..images import to_uint8
from ..metrics.classifier import ClassifierFeatures, classifier_path
from ..metrics.features import InceptionFeatures
from ..metrics.fid import FidKid, RealFeatures, embed
from .common import median_spread, timed

HEADER = ("| case | evaluation | ganlab | plain torchmetrics | speed-up (plain / ganlab), median [min-max] | "
          "ganlab generated images/s |\n|---|---|---|---|---|---|")
EVALUATIONS = {
    "later": "later evaluation of a run (real set already embedded by both)",
    "first": "first of a run (both embed the real set)",
    "cached": "first of a later run (ganlab: real features from its disk cache; torchmetrics: embeds them again)",
}
BATCH = 200  # images per forward pass, both sides (metrics/fid.py's embed)
# How close both sides' values must be. FID: both from the same features in float64 (torchmetrics returns it as
# float32). KID: both multiply float32 features; ganlab sums the kernel in float64, torchmetrics in float32.
RTOL = {"fid": 1e-5, "kid": 1e-3}
ATOL = {"fid": 1e-6, "kid": 1e-6}
SEED = 0  # KID's random subsets: the same draws on both sides


class _PassThrough(nn.Module):
    """A torchmetrics `feature` module for features computed outside the metric (its input is already (N, F));
    `num_features` spares FID its probe with a dummy image."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: Tensor) -> Tensor:
        return x


class GanlabEval:
    """FID + KID as metrics/suite.py's Suite computes them, one instance per run."""

    def __init__(self, net: nn.Module, cache: Path, subset: int, key: str = "bench"):
        self.net, self.real_features, self.key, self.subset = net, RealFeatures(net, root=cache), key, subset
        self.stats = None  # FidKid once the run's first evaluation has the real features

    def __call__(self, real: Tensor, fake: Tensor) -> dict[str, float]:
        if self.stats is None:
            self.stats = FidKid(self.real_features.get(self.key, lambda: real), self.subset)
        return self.stats(embed(self.net, fake))


class PlainEval:
    """torchmetrics used well, one instance per run: the real set embedded on the run's first evaluation only
    (reset_real_features=False), each image through the network once, its features shared by FID and KID."""

    def __init__(self, net: nn.Module, dim: int, subset: int, device: torch.device):
        self.net = net
        self.fid = FrechetInceptionDistance(feature=_PassThrough(dim), reset_real_features=False).to(device)
        self.kid = KernelInceptionDistance(feature=_PassThrough(dim), subset_size=subset,
                                           reset_real_features=False).to(device)
        self.has_real = False

    @torch.no_grad()
    def _update(self, images: Tensor, real: bool) -> None:
        for i in range(0, len(images), BATCH):
            features = self.net(images[i:i + BATCH])  # (B, F): one forward pass for both metrics
            self.fid.update(features, real=real)
            self.kid.update(features, real=real)

    def __call__(self, real: Tensor, fake: Tensor) -> dict[str, float]:
        if not self.has_real:
            self.add_real(real)
        return self.evaluate(fake)

    def add_real(self, real: Tensor) -> None:
        self._update(real, real=True)
        self.has_real = True

    def evaluate(self, fake: Tensor) -> dict[str, float]:
        self.fid.reset()  # drops the last evaluation's generated set, keeps the real one
        self.kid.reset()
        self._update(fake, real=False)
        kid, _ = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid)}


def check_same(a: dict[str, float], b: dict[str, float], what: str = "") -> dict[str, float]:
    """Relative differences of FID and KID between two evaluations; AssertionError beyond RTOL / ATOL."""
    diff = {}
    for k in ("fid", "kid"):
        if not math.isclose(a[k], b[k], rel_tol=RTOL[k], abs_tol=ATOL[k]):
            raise AssertionError(f"{what}: {k} differs beyond rtol {RTOL[k]:g} / atol {ATOL[k]:g}: "
                                 f"ganlab {a[k]!r} vs plain {b[k]!r}")
        diff[k] = abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k]), 1e-300)
    return diff


# Images each side embeds in one evaluation of m generated images: (ganlab, plain), in units of m.
EMBEDDED = {"later": (1, 1), "first": (2, 2), "cached": (1, 2)}


@dataclass
class Comparison:
    n: int  # generated images per evaluation
    subset: int  # KID subset size
    dim: int  # features per image
    pairs: int
    times: dict[str, dict[str, list[float]]]  # evaluation -> side -> seconds, one per pair
    values: dict[str, dict[str, float]]  # "ganlab" / "plain" -> {"fid", "kid"} of the later evaluation
    max_diff: dict[str, float]  # largest relative difference over all evaluations, per metric
    split: dict[str, float]  # one later evaluation's parts: "embed", "ganlab_stats", "plain_stats" seconds

    def at(self, n: int) -> dict[str, dict[str, list[float]]]:
        """The times for n generated images: as measured when n is what was timed; else each time plus the
        embedding of the images it lacks (n - self.n per set the side embeds, at the measured seconds per image
        of split["embed"]), the statistics as timed on self.n features."""
        per_image = self.split["embed"] / self.n
        return {e: {side: [t + (n - self.n) * k * per_image for t in self.times[e][side]]
                    for side, k in zip(("ganlab", "plain"), EMBEDDED[e])} for e in self.times}


def compare(net: nn.Module, real: Tensor, fake: Tensor, subset: int, pairs: int,
            device: torch.device) -> Comparison:
    """Times the three evaluations on both sides in `pairs` ABBA pairs (per evaluation, the side that goes first
    alternates), checks every pair of results agrees, and times the parts of one later evaluation."""
    dim = embed(net, real[:2]).shape[1]

    def run(side: GanlabEval | PlainEval) -> Callable[[], dict[str, float]]:
        def call():
            torch.manual_seed(SEED)
            return side(real, fake)
        return call

    w = max(2, min(len(real) // 4, BATCH))  # warm-up, untimed: both sides once on a slice
    with tempfile.TemporaryDirectory() as tmp:
        GanlabEval(net, Path(tmp), min(subset, w))(real[:w], fake[:w])
    PlainEval(net, dim, min(subset, w), device)(real[:w], fake[:w])

    secs = {e: {"ganlab": [], "plain": []} for e in EVALUATIONS}
    max_diff = {"fid": 0.0, "kid": 0.0}
    values = {}
    for k in range(pairs):
        order = ("ganlab", "plain") if k % 2 == 0 else ("plain", "ganlab")
        with tempfile.TemporaryDirectory() as tmp:
            # one run (its first and second evaluation), then a later run whose ganlab side finds on disk the real
            # features the first run wrote (its first evaluation: "cached")
            run1 = {"ganlab": GanlabEval(net, Path(tmp), subset), "plain": PlainEval(net, dim, subset, device)}
            run2 = {"ganlab": GanlabEval(net, Path(tmp), subset), "plain": PlainEval(net, dim, subset, device)}
            for evaluation in ("first", "later", "cached"):
                out = {}
                for side in order:
                    t, out[side] = timed(run((run2 if evaluation == "cached" else run1)[side]), device)
                    secs[evaluation][side].append(t)
                diff = check_same(out["ganlab"], out["plain"], f"{evaluation} evaluation, pair {k}")
                max_diff = {m: max(max_diff[m], diff[m]) for m in diff}
                if evaluation == "later" and k == 0:
                    values = out
            stats = run1["ganlab"].stats  # the run's FidKid, its real part computed: kept for the parts below
    # one later evaluation in parts: embedding the generated set (the same work on both sides), then each
    # side's statistics from features
    t_embed, fake_f = timed(lambda: embed(net, fake), device)  # (N, F) float64, as ganlab keeps them
    t_ganlab_stats, _ = timed(lambda: stats(fake_f), device)
    plain = PlainEval(_PassThrough(dim), dim, subset, device)  # a "network" that hands over ready features
    plain.add_real(stats.real32.to(device))  # the network's float32 features, as the plain side gets them
    fake_f32 = fake_f.float().to(device)
    torch.manual_seed(SEED)
    t_plain_stats, _ = timed(lambda: plain.evaluate(fake_f32), device)
    return Comparison(
        n=len(fake), subset=subset, dim=dim, pairs=pairs, times=secs, values=values, max_diff=max_diff,
        split={"embed": t_embed, "ganlab_stats": t_ganlab_stats, "plain_stats": t_plain_stats})


def report(name: str, n: int, device: str, res: Comparison) -> tuple[list[str], str]:
    """The table rows (one per evaluation) and the note of one feature network's comparison, at n generated
    images: estimated (Comparison.at) when fewer were timed."""
    m, subset, est = res.n, res.subset, " (est.)" if res.n < n else ""
    rows = []
    for e, what in EVALUATIONS.items():
        times = res.at(n)[e]
        g, p = median_spread(times["ganlab"])[0], median_spread(times["plain"])[0]
        med, lo, hi = median_spread([tp / tg for tg, tp in zip(times["ganlab"], times["plain"])])
        rows.append(f"| FID+KID, {name} features, N={n}, {device} | {what} | {g:.2f} s{est} | {p:.2f} s{est} | "
                    f"**{med:.2f}x** [{lo:.2f}-{hi:.2f}] | {n / g:.0f}{est} |")
    gv, pv, s = res.values["ganlab"], res.values["plain"], res.split
    timed_on = (f"timed on {m} images, scaled to {n} by adding the embedding of the missing images at the measured "
                f"{s['embed'] / m * 1e3:.0f} ms/image (statistics as timed on {m})") if m < n else f"all {n} images"
    note = (f"- {name} features ({res.dim}-d), {timed_on}, KID 100 subsets of {subset}, {res.pairs} ABBA pairs: "
            f"FID ganlab {gv['fid']:.6g} / plain {pv['fid']:.6g}, KID ganlab {gv['kid']:.6g} / plain {pv['kid']:.6g}; "
            f"largest relative difference over all evaluations FID {res.max_diff['fid']:.1e}, KID "
            f"{res.max_diff['kid']:.1e} (checked: rtol {RTOL['fid']:g} / {RTOL['kid']:g}). One later evaluation of "
            f"{m} images in parts: embedding the generated images {s['embed']:.2f} s (the same on both sides), "
            f"statistics from the features: ganlab {s['ganlab_stats']:.2f} s (the real set's FID moments, their square "
            f"root and KID's real kernel sums kept), torchmetrics {s['plain_stats']:.2f} s (the network's float32 "
            f"features; the real set's FID sums kept)")
    return rows, note


def bench_fid(n: int, inception_n: int, root: str, pairs: int | None = None) -> list[str]:
    """Table rows (three per feature network), a blank line, then one note per network."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = IdxImages(root=root, size=32)
    dm.setup()
    real = to_uint8(dm.x[:n]).to(device)  # (n, 1, 32, 32)
    fake = real.flip(-1)  # (n, 1, 32, 32): mirrored garments, a different set of the same size
    cpu_inception = device.type != "cuda"
    nets = [("classifier", lambda: ClassifierFeatures(classifier_path(root)), n, pairs or 3),
            ("inception", InceptionFeatures, inception_n if cpu_inception else n, pairs or (1 if cpu_inception else 3))]
    rows, notes = [], []
    for name, make, m, k in nets:
        try:
            net = make().to(device)
        except FileNotFoundError as e:  # make classifier / make inception put them in the cache
            rows.append(f"| FID+KID, {name} features | skipped: {e} |")
            continue
        r, note = report(name, n, device.type, compare(net, real[:m], fake[:m], min(1000, m), k, device))
        rows += r
        notes.append(note)
    return rows + [""] + notes
