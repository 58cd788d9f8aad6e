"""The report's PNG figures, drawn on figures of their own (Agg canvas, outside pyplot's global state)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ..metrics.registry import higher_is_better
from .collect import Group
from .stats import aligned, curve, times


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def _wrap(label: str, width: int = 40) -> str:
    return "\n".join(textwrap.wrap(label, width, break_long_words=False, break_on_hyphens=False)) or label


def curves(groups: list[Group], metrics: list[str], path: Path, columns: int = 4) -> Path:
    """Per metric two panels, one above the other: per group the mean over seeds against the iteration, with a
    min-max band; below, the same means against the training time (time/seconds: the mean over seeds of the time
    each evaluation was logged at, metric evaluations included), when the runs logged it: a recipe's speed to
    quality. Metrics fill rows of `columns` such pairs."""
    timed = any("time/seconds" in r.series for g in groups for r in g.runs)
    per = 1 + timed  # panel rows per metric
    cols, blocks = min(columns, len(metrics)), -(-len(metrics) // columns)
    fig = Figure(figsize=(5 * cols, 4 * per * blocks), dpi=100, layout="constrained")
    grid = np.array(fig.subplots(per * blocks, cols, squeeze=False))  # (per * blocks, cols)
    for ax in grid.flat:
        ax.set_visible(False)
    for j, metric in enumerate(metrics):
        axes = grid[per * (j // cols):per * (j // cols + 1), j % cols]  # (per,): by iteration, by time
        for i, g in enumerate(groups):
            c = curve(g, metric)
            if c is None:
                continue
            steps, mean, lo, hi = c  # (T,) each
            color = f"C{i % 10}"
            axes[0].plot(steps, mean, color=color, marker="o", ms=3, label=f"{_wrap(g.label, 30)} (n={len(g.runs)})")
            axes[0].fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)
            minutes = times(g, steps)
            if timed and minutes is not None:
                axes[1].plot(minutes, mean, color=color, marker="o", ms=3)
                axes[1].fill_between(minutes, lo, hi, color=color, alpha=0.2, lw=0)
        title = f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)"
        for ax, xlabel in zip(axes, ["iteration", "training time (minutes)"]):
            ax.set_visible(True)
            ax.set_xlabel(xlabel)
            ax.set_title(title)
            ax.grid(alpha=0.3)
    grid[0, 0].legend(fontsize=7)
    return _save(fig, path)


def montage(groups: list[Group], path: Path) -> Path:
    """The last sample picture of each group's first seed, side by side (at most four per row)."""
    shown = [g for g in groups if g.first.samples is not None]
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(4 * cols, 4.4 * rows), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, g in zip(axes, shown):
        try:
            with Image.open(g.first.samples) as im:
                ax.imshow(np.asarray(im.convert("RGB")))  # (H, W, 3) uint8
        except (OSError, ValueError) as e:  # a damaged file costs its panel, not the report
            ax.text(0.5, 0.5, _wrap(f"unreadable: {e}"), ha="center", va="center", fontsize=8)
        ax.set_title(f"{_wrap(g.label)}\nseed {g.first.seed}, {g.first.samples.stem}", fontsize=8)
    return _save(fig, path)


def critic_scatter(groups: list[Group], metric: str, path: Path) -> Path:
    """train/wasserstein (x) against `metric` (y) at the aligned evaluation steps, a colour per group."""
    fig = Figure(figsize=(6, 4.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    for i, g in enumerate(groups):
        labelled = False
        for r in g.runs:
            if "train/wasserstein" in r.series and metric in r.series:
                _, w, q = aligned(r, metric)  # (P,), (P,)
                ax.scatter(w, q, s=14, color=f"C{i % 10}", label=None if labelled else _wrap(g.label, 30))
                labelled = True
    ax.set_xlabel("train/wasserstein (critic's estimate of W1)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
