"""The numbers of a report: which metrics its main table shows, final and best metrics over seeds, curves over
steps, and the Spearman rank correlation between a Wasserstein critic's estimate and sample quality."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import registry
from ..metrics.registry import Data
from .collect import Group, Run


def toy_metrics() -> list[str]:
    """The logged names of the metrics of toy points (val/modes, val/hq, val/w1, ...), in the registry's order."""
    return registry.logged(d for d in Data if d.toy)


def image_metrics() -> list[str]:
    """The logged names of the metrics of images (val/fid, val/kid, ...), in the registry's order."""
    return registry.logged(d for d in Data if not d.toy)


def is_toy(groups: list[Group]) -> bool:
    """Toy data logs val/w1 (and val/modes, val/hq); images val/fid."""
    toy = toy_metrics()
    return any(k in r.series for g in groups for r in g.runs for k in toy)


def table_metrics(groups: list[Group]) -> list[str]:
    """The table's metrics: those of the data set's kind that some run logged, in the registry's order."""
    names = toy_metrics() if is_toy(groups) else image_metrics()
    return [k for k in names if any(k in r.series for g in groups for r in g.runs)]


# The main table's width, its group / n / minutes columns included (a wider table wraps or scrolls on GitHub and
# is not read); the logged metrics that do not fit go to the table of the other metrics.
MAIN_COLUMNS = 8

# The metrics a reader needs first, most important first (bare registry names; a registered name not in it ranks
# after these, in the registry's order: a new metric takes a free column, else the table of the other metrics; a
# test holds these to the registry's names). Why this order:
# - toy mixtures: modes and hq are the numbers the mode-collapse papers (VEEGAN, PacGAN) report, w1 the distance
#   of the samples themselves: all three, i.e. every toy metric;
# - images: fid, the usual single number (it compares runs of one feature network and N); precision and recall,
#   which split it into fidelity and diversity (recall is where a collapse shows); on data with classes, classes
#   and class_kl, the direct count of modes that stacked Fashion-MNIST is about; is, when its weights were found;
#   kid last: fid's features again, unbiased, and in agreement with fid at the N the recipes use.
# With a minutes column 5 metrics fit: fid, precision, recall, classes, class_kl on labelled images; fid,
# precision, recall, is, kid on images without a domain classifier; modes, hq, w1 on toy data.
PRIORITY = ("modes", "hq", "w1", "fid", "precision", "recall", "classes", "class_kl", "is", "kid")


def main_metrics(groups: list[Group], room: int) -> list[str]:
    """The main table's metrics: the `room` logged metrics (table_metrics) that rank first in PRIORITY, in the
    registry's order (the curves' order)."""
    logged = table_metrics(groups)
    rank = {registry.PREFIX + name: i for i, name in enumerate(PRIORITY)}
    chosen = set(sorted(logged, key=lambda m: (rank.get(m, len(rank)), logged.index(m)))[:max(room, 0)])
    return [m for m in logged if m in chosen]


def final_and_best(run: Run, metric: str) -> tuple[float, float] | None:
    """The metric at the run's last evaluation, and its best value over the evaluations (lowest for fid / kid /
    w1, highest for the others); None when the run never logged it."""
    if metric not in run.series or not len(run.series[metric][1]):
        return None
    values = run.series[metric][1]  # (T,)
    return float(values[-1]), float(values.max() if registry.higher_is_better(metric) else values.min())


@dataclass
class Summary:
    n: int                          # runs (seeds) that logged the metric
    final: tuple[float, float]      # mean, std over seeds (std: ddof=1, nan for one seed)
    best: tuple[float, float]


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; nan for a single value) of values (n,)."""
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else float("nan")


def summarize(group: Group, metric: str) -> Summary | None:
    pairs = [p for p in (final_and_best(r, metric) for r in group.runs) if p is not None]
    if not pairs:
        return None
    final, best = np.array(pairs).T  # (n,), (n,)
    return Summary(len(pairs), mean_std(final), mean_std(best))


def curve(group: Group, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """steps (T,), and the mean, min and max (T,) over the group's runs at the steps all of them evaluated."""
    series = [r.series[metric] for r in group.runs if metric in r.series]
    if not series:
        return None
    steps = series[0][0]
    for s, _ in series[1:]:
        steps = np.intersect1d(steps, s)
    values = np.stack([v[np.searchsorted(s, steps)] for s, v in series])  # (runs, T)
    return steps, values.mean(0), values.min(0), values.max(0)


def times(group: Group, steps: np.ndarray) -> np.ndarray | None:
    """The mean over the group's runs of the training time in minutes (T,) at `steps` (T,): the last row each run
    logged at that step (an evaluation's own row, written after it); None unless every run logged them all."""
    minutes = []
    for run in group.runs:
        if "time/seconds" not in run.series:
            return None
        s, v = run.series["time/seconds"]
        at = np.searchsorted(s, steps)
        if (at >= len(s)).any() or not np.array_equal(s[np.minimum(at, len(s) - 1)], steps):
            return None
        minutes.append(v[at] / 60)
    return np.mean(minutes, axis=0)


def quality_metric(run: Run) -> str | None:
    """What a critic's estimate is compared with: FID on images, the exact W1 of samples (val/w1) on toy data."""
    for key in ("val/fid", "val/w1"):
        if key in run.series:
            return key
    return None


def aligned(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """steps (P,), train/wasserstein (P,), metric (P,) at the evaluation steps that also have a train/wasserstein
    row: the critic's estimate averaged over the logging interval that ends at that iteration. Evaluation steps
    without such a row (trainer.log_every_n_steps not dividing metrics.every) are left out."""
    ws, wv = run.series["train/wasserstein"]
    ms, mv = run.series[metric]
    steps, wi, mi = np.intersect1d(ws, ms, return_indices=True)
    keep = np.isfinite(wv[wi]) & np.isfinite(mv[mi])
    return steps[keep], wv[wi][keep], mv[mi][keep]


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of values (n,), ties given the mean of the ranks they span (scipy's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    s = x[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first sorted position of each tie block
    ends = np.r_[starts[1:], len(x)]                          # one past its last
    block = np.repeat(np.arange(len(starts)), ends - starts)  # (n,) the block of each sorted position
    ranks = np.empty(len(x))
    ranks[order] = ((starts + ends - 1) / 2 + 1)[block]
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of paired finite values (n,), (n,): the Pearson correlation of their average
    ranks; nan for fewer than two pairs or when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman needs two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        return float("nan")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2  # centred ranks (n,)
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")
