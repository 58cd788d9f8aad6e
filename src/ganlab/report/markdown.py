"""The report's Markdown: per data set the groups, a table of the final value of the metrics that matter for the
data (mean ± std over seeds), one of their best values during the run, one of the other metrics, curves, samples
and the Wasserstein critic check; then the runs that did not complete."""
from __future__ import annotations

import math

import numpy as np

from ..metrics.registry import higher_is_better
from .collect import Floor, Group, Run, shared
from .stats import (MAIN_COLUMNS, aligned, is_toy, main_metrics, mean_std, quality_metric, spearman, summarize,
                    table_metrics)


def pm(mean: float, std: float) -> str:
    """'mean ± std' as the table prints it; the mean alone for a single seed (std nan)."""
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def _code(items) -> str:
    return " ".join(f"`{x}`" for x in items) or "—"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows), ""]


def _features(groups: list[Group]) -> list[str]:
    """Which network produced FID / KID and on how many samples (csv/hparams.yaml), per distinct setting."""
    seen: dict[tuple, list[str]] = {}
    for g in groups:
        for r in g.runs:
            if "val/fid" not in r.series and "val/kid" not in r.series:
                continue
            metrics = r.hparams.get("metrics") or {}
            key = (r.hparams.get("metrics/features"), metrics.get("n"))
            if g.label not in seen.setdefault(key, []):
                seen[key].append(g.label)
    lines = []
    for (features, n), labels in seen.items():
        where = "" if len(seen) == 1 else f" ({', '.join(labels)})"
        lines.append(f"- FID / KID on the features of `{features or 'unknown (no metrics/features in hparams.yaml)'}`, "
                     f"N = {n if n is not None else '?'} generated images against as many real training images"
                     f"{where}; from `metrics/features` and `metrics.n` in each run's `csv/hparams.yaml`.")
    if len(seen) > 1:
        lines.append("- **Numbers of different feature networks or N do not compare.**")
    return lines + [""] if lines else []


def _arrow(metric: str) -> str:
    return "↑" if higher_is_better(metric) else "↓"


def _cells(group: Group, metrics: list[str], which: str) -> list[str]:
    """Per metric the group's mean ± std over seeds of `which` ("final" or "best"), with (n=…) when fewer runs than
    the group's logged it."""
    cells = []
    for m in metrics:
        s = summarize(group, m)
        cells.append("—" if s is None else pm(*getattr(s, which)) + ("" if s.n == len(group.runs) else f" (n={s.n})"))
    return cells


def _minutes(group: Group) -> str:
    ends = np.array([r.series["time/seconds"][1][-1] / 60 for r in group.runs if "time/seconds" in r.series])
    cell = pm(*mean_std(ends)) if len(ends) else "—"
    return cell + ("" if len(ends) in (0, len(group.runs)) else f" (n={len(ends)})")


def _floor_cells(floor: Floor, metrics: list[str]) -> list[str]:
    return [f"{floor.metrics[m[4:]]:.4g}" if m.startswith("val/") and m[4:] in floor.metrics else "—"
            for m in metrics]


def _metrics_tables(groups: list[Group], floors: list[Floor] | tuple = ()) -> list[str]:
    """The main table (the final value of the metrics that matter for the data: stats.PRIORITY, at most
    stats.MAIN_COLUMNS columns; then a row per floor, what real held-out images score), the best value of the same
    metrics during the run, and the other logged metrics (final and best), one row per group and metric so that no
    table grows sideways with the metrics."""
    logged = table_metrics(groups)
    if not logged:
        return ["No `val/*` sample-quality metrics were logged (metrics=none?).", ""]
    timed = any("time/seconds" in r.series for g in groups for r in g.runs)
    fixed = ["group", "n"] + (["minutes"] if timed else [])
    metrics = main_metrics(groups, MAIN_COLUMNS - len(fixed))
    others = [m for m in logged if m not in metrics]
    best = ", ".join(f"{m} {'highest' if higher_is_better(m) else 'lowest'}" for m in logged)
    where = (f" The other logged metrics ({', '.join(others)}) are in the third table." if others else "")
    lines = ["### Final metrics", "",
             "Mean ± standard deviation (ddof=1) over the seeds of each group of the metric at the run's last "
             "evaluation; n = completed runs (a run the time limit stopped counts, at its last evaluation); ↑ / ↓: higher / lower is better." +
             (" *minutes*: each run's training time (`time/seconds` at its last row: wall-clock over its launches, "
              "evaluations included, on the machine that ran it)." if timed else "") + where, "",
             *_table(fixed + [f"{m} {_arrow(m)}" for m in metrics],
                     [[g.label, str(len(g.runs))] + ([_minutes(g)] if timed else []) + _cells(g, metrics, "final")
                      for g in groups] +
                     [[f.label, "—"] + (["—"] if timed else []) + _floor_cells(f, metrics) for f in floors]),
             *([f"*{f.label}*: {f.n} images of the {f.held_out} split scored in place of samples, against the same "
                f"real training images on the same network (`python evaluate.py floor={f.data} held_out={f.held_out} "
                f"metrics.n={f.n}`, `{f.path}`): FID and KID's finite-sample floor, the precision, recall and "
                f"class counts that real images reach." for f in floors]),
             *([""] if floors else []),
             "### Best during the run", "",
             f"The best evaluation of each run ({best}), then mean ± std over the seeds as above: a run that was "
             f"better before its end shows it here.", "",
             *_table(["group", "n"] + [f"{m} {_arrow(m)}" for m in metrics],
                     [[g.label, str(len(g.runs))] + _cells(g, metrics, "best") for g in groups])]
    if others:
        lines += ["### Other metrics", "", "The logged metrics not in the tables above, final and best as there "
                  "(n = runs that logged it):", "",
                  *_table(["group", "metric", "n", "final", "best"],
                          [[g.label, f"{m} {_arrow(m)}", str(s.n), pm(*s.final), pm(*s.best)]
                           for g in groups for m in others if (s := summarize(g, m)) is not None])]
    return lines


def _critic(groups: list[Group], figure: str | None) -> list[str]:
    rows, pooled_w, pooled_q, metrics = [], [], [], set()
    for g in groups:
        for r in g.runs:
            metric = quality_metric(r)
            if "train/wasserstein" not in r.series or metric is None:
                continue
            metrics.add(metric)
            steps, w, q = aligned(r, metric)  # (P,) each
            pooled_w.append(w)
            pooled_q.append(q)
            rho = spearman(w, q)
            rows.append([f"`{r.path}`", g.label, str(r.seed), metric, str(len(steps)), _rho(rho)])
    if not rows:
        return []
    w, q = np.concatenate(pooled_w), np.concatenate(pooled_q)  # (P_total,) each
    rows.append(["**pooled**", "all runs above", "", " / ".join(sorted(metrics)), str(len(w)), _rho(spearman(w, q))])
    against = ("`val/w1`, the exact earth mover's distance between generated and real samples (POT, "
               "`metrics.toy_n` of each): a measurement of the samples, not the critic's estimate"
               if "val/w1" in metrics else "`val/fid` (on the feature network named above)")
    lines = ["### Does the critic's estimate track sample quality?", "",
             f"Runs with a Wasserstein critic log `train/wasserstein` = E[D(real)] − E[D(fake)], the critic's "
             f"estimate of W1; the WGAN papers claim it tracks sample quality. Here it is set against {against}. "
             f"**Alignment:** `val/*` exists only at evaluation steps, `train/wasserstein` only on logging rows, "
             f"each the mean over the `trainer.log_every_n_steps` iterations that end there; each evaluation step "
             f"is paired with the `train/wasserstein` row of the same step, and evaluation steps without one are "
             f"left out (pairs = those kept). ρ is Spearman's rank correlation (average ranks for ties): near +1, "
             f"the estimate falls when the distance of the samples falls; — means fewer than two pairs or a "
             f"constant side. The pooled ρ mixes critics of different settings, whose scales may differ.", "",
             *_table(["run", "group", "seed", "against", "pairs", "Spearman ρ"], rows)]
    if figure:
        lines += [f"![train/wasserstein against sample quality]({figure})", ""]
    return lines


def _rho(rho: float) -> str:
    return "—" if math.isnan(rho) else f"{rho:+.3f}"


def dataset_section(data: str, groups: list[Group], figures: dict[str, str],
                    floors: list[Floor] | None = None) -> list[str]:
    toy = is_toy(groups)
    lines = [f"## Data set `{data}` ({'toy data' if toy else 'images'})", ""]
    common = shared(groups)
    if common:
        lines += [f"Every run here shares the overrides {_code(common)}; a group is one setting over its seeds:", ""]
    lines += _table(["group", "seeds", "runs"],
                    [[g.label, ", ".join(str(r.seed) for r in g.runs), "<br>".join(f"`{r.path}`" for r in g.runs)]
                     for g in groups])
    if toy:
        def used(key: str, default: str) -> str:
            return " / ".join(sorted({str((r.hparams.get("metrics") or {}).get(key, default))
                                      for g in groups for r in g.runs}))
        lines += [f"Toy metrics on {used('toy_n', '?')} generated samples (`metrics.toy_n`): `val/hq` is the "
                  f"fraction within {used('k', '3.0')} std of their nearest mode (`metrics.k`), `val/modes` counts "
                  f"the modes nearest to at least {used('min_count', '1')} of those high-quality samples "
                  f"(`metrics.min_count`; VEEGAN and PacGAN count one), `val/w1` is the exact W1 against as many "
                  f"real samples.", ""]
    else:
        lines += _features(groups)
    lines += _metrics_tables(groups, floors or [])
    if "curves" in figures:
        lines += ["### Curves", "", "Mean over the seeds of each group; the band spans their minimum and maximum. "
                  "Each logged metric (those of the tables above) has two panels: against the iteration, and below "
                  "it (runs that log `time/seconds`) against the training time, evaluations included, on the "
                  "machine that ran them.",
                  "", f"![curves]({figures['curves']})", ""]
    if "samples" in figures:
        shown = [g for g in groups if g.first.samples is not None]
        lines += ["### Samples", "", "The last `samples/iter_*.png` of each group's first seed:", "",
                  f"![samples]({figures['samples']})", "",
                  *(f"- {g.label}: `{g.first.samples}`" for g in shown), ""]
    lines += _critic(groups, figures.get("critic"))
    return lines


def failures_section(runs: list[Run]) -> list[str]:
    bad = [r for r in runs if not r.completed]
    if not bad:
        return []
    return ["## Runs not in the tables", "",
            "Runs that did not complete (status from the run's `status.json` or the sweep's `sweep.json`; "
            "*incomplete*: neither file, and `csv/metrics.csv` stops before `iterations`):", "",
            *_table(["run", "data", "overrides", "status", "error"],
                    [[f"`{r.path}`", r.data, _code(r.overrides), r.status, r.error or "—"] for r in bad])]


def render(command: str, dirs: list[str], runs: list[Run], groups: dict[str, list[Group]],
           figures: dict[str, dict[str, str]], intro: str | None,
           floors: dict[str, list[Floor]] | None = None) -> str:
    done = sum(r.completed for r in runs)
    lines = ["# GAN runs report", ""]
    if intro:
        lines += [intro.rstrip(), ""]
    lines += [f"Written by `{command}`: {len(runs)} runs, {done} completed or stopped by the time limit, from", "",
              *(f"- `{d}`" for d in dirs), ""]
    for data, gs in groups.items():
        lines += dataset_section(data, gs, figures.get(data, {}), (floors or {}).get(data))
    lines += failures_section(runs)
    return "\n".join(lines).rstrip() + "\n"
