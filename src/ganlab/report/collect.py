"""Reading run and sweep folders into Runs, and grouping them into settings (a setting = one set of overrides
over seeds). Nothing here writes anything: every bad input is found before report.py writes a file.

A run folder (train.py's Hydra folder) holds `.hydra/config.yaml`, `.hydra/overrides.yaml`, `csv/metrics.csv`
(one row per logging interval or evaluation at step = generator iteration, each column only on rows where it
was computed), `csv/hparams.yaml` (the resolved config, plus `metrics/features`), `samples/iter_*.png`, and
`status.json` (status, error, final metrics, overrides) when train.py wrote one. A sweep folder (Hydra's
multirun) holds numbered run folders, `multirun.yaml`, and `sweep.json` (the jobs with their status) when
written. A run the time limit stopped (trainer.max_time) is scored with the completed ones, at its last evaluation.
Older runs without status.json count as "completed" when their csv reaches `iterations`, else
"incomplete".
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..run_folder import in_use

SEED = re.compile(r"^\+{0,2}seed=")


class ReportError(ValueError):
    """Bad input to report.py: the message names the file or folder and what was expected."""


@dataclass
class Run:
    path: Path
    overrides: list[str]
    status: str                     # completed | failed | diverged | config_error | interrupted | stopped |
                                    # running | killed | incomplete
    error: str | None = None
    data: str = "?"                 # the data set, as chosen on the command line (data=ring8) or by a preset
    seed: int | None = None
    iterations: int | None = None
    hparams: dict = field(default_factory=dict)  # csv/hparams.yaml: the resolved config (+ metrics/features)
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # column -> steps (T,), values (T,)
    samples: Path | None = None     # the last samples/iter_*.png

    @property
    def setting(self) -> tuple[str, ...]:
        """The overrides without seed=, sorted: runs with equal settings differ only in their seed."""
        return tuple(sorted(o for o in self.overrides if not SEED.match(o)))

    @property
    def completed(self) -> bool:
        """Scored in the tables: it ran to `iterations`, or trainer.max_time stopped it with its final checkpoint
        and evaluation (a run at a time budget: `stopped`)."""
        return self.status in ("completed", "stopped")


@dataclass
class Group:
    data: str
    setting: tuple[str, ...]
    runs: list[Run]                 # completed runs, by seed
    label: str = ""                 # the overrides that set this group apart from the others of its data set

    @property
    def first(self) -> Run:
        return self.runs[0]


def _yaml(path: Path) -> dict:
    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ReportError(f"{path}: cannot read it as YAML ({e})") from None


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: cannot read it as JSON ({e})") from None


def read_metrics(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metrics.csv -> {column: (steps (T,) int64, values (T,) float64)}, each column only at the steps it was
    logged (empty cells skipped; a step logged twice keeps its last value)."""
    columns: dict[str, dict[int, float]] = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = int(float(row["step"]))
                for key, value in row.items():
                    if key != "step" and value not in ("", None):
                        columns.setdefault(key, {})[step] = float(value)
    except (OSError, KeyError, ValueError) as e:
        raise ReportError(f"{path}: not a metrics.csv of train.py ({type(e).__name__}: {e})") from None
    return {k: (np.array(sorted(v), dtype=np.int64), np.array([v[s] for s in sorted(v)], dtype=np.float64))
            for k, v in columns.items()}


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file() or (path / "status.json").is_file()


def is_sweep_dir(path: Path) -> bool:
    return (path / "multirun.yaml").is_file() or (path / "sweep.json").is_file()


def _data_choice(path: Path, config: dict, overrides: list[str]) -> str:
    """The data set's config name: Hydra's runtime choice (also when a preset or experiment picked it), else
    the data= override, else the data module's class name."""
    hydra_yaml = path / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        choice = (((_yaml(hydra_yaml).get("hydra") or {}).get("runtime") or {}).get("choices") or {}).get("data")
        if choice:
            return str(choice)
    for o in overrides:
        if o.startswith("data="):
            return o.split("=", 1)[1]
    target = (config.get("data") or {}).get("_target_")
    return str(target).rsplit(".", 1)[-1] if target else "?"


def read_run(path: Path, job: dict | None = None) -> Run:
    """One run folder; `job` is its entry in the sweep's sweep.json, if any (status.json wins over it)."""
    config = _yaml(path / ".hydra" / "config.yaml") if (path / ".hydra" / "config.yaml").is_file() else {}
    hparams = _yaml(path / "csv" / "hparams.yaml") if (path / "csv" / "hparams.yaml").is_file() else {}
    status = _json(path / "status.json") if (path / "status.json").is_file() else None
    if status is not None and not (isinstance(status, dict) and "status" in status):
        raise ReportError(f"{path / 'status.json'}: expected an object with a 'status' key")
    if status is not None and status.get("overrides") is not None:
        overrides = list(status["overrides"])
    elif (path / ".hydra" / "overrides.yaml").is_file():
        overrides = list(_yaml(path / ".hydra" / "overrides.yaml") or [])
    else:
        overrides = list((job or {}).get("overrides") or [])
    overrides = [str(o) for o in overrides]
    config = config or hparams
    csv_path = path / "csv" / "metrics.csv"
    series = read_metrics(csv_path) if csv_path.is_file() else {}
    iterations = config.get("iterations")
    iterations = int(iterations) if isinstance(iterations, (int, float)) else None
    if status is not None:
        state, error = str(status["status"]), status.get("error")
        if state == "running" and not in_use(path):  # its launch would hold the folder (run_folder.py)
            state, error = "killed", "killed while it ran (status.json says running); the same command continues it"
    elif job is not None and job.get("status"):
        state, error = str(job["status"]), job.get("error")
    else:  # an older run: judge by how far its csv got
        last = max((int(s[-1]) for s, _ in series.values() if len(s)), default=None)
        if last is not None and iterations is not None and last >= iterations:
            state, error = "completed", None
        else:
            state = "incomplete"
            error = ("no csv/metrics.csv" if not csv_path.is_file() else
                     f"csv/metrics.csv ends at iteration {last} of {iterations}")
    seed = config.get("seed")
    samples = sorted((path / "samples").glob("iter_*.png"))
    return Run(path=path, overrides=overrides, status=state, error=None if error is None else str(error),
               data=_data_choice(path, config, overrides), seed=int(seed) if isinstance(seed, int) else None,
               iterations=iterations, hparams=hparams, series=series, samples=samples[-1] if samples else None)


def _job_folder(path: Path, job: dict, sweep_dir: str | None) -> Path:
    """Where a sweep.json job's run folder is now: its recorded `dir` taken relative to the recorded sweep
    folder (the sweep may have been moved since), else <sweep>/<num>."""
    recorded = job.get("dir")
    if recorded and sweep_dir:
        try:
            return path / Path(recorded).relative_to(sweep_dir)
        except ValueError:
            pass
    return path / str(job.get("num", job.get("number")))


def read_sweep(path: Path) -> list[Run]:
    """The runs of a sweep folder: each job of sweep.json (also one whose folder is gone), then every other run
    folder below it (Hydra's numbered job folders 0/, 1/, …)."""
    runs, seen = [], set()
    if (path / "sweep.json").is_file():
        record = _json(path / "sweep.json")  # {"sweep_dir", "jobs": [{num, dir, overrides, status, error}], ...}
        jobs = record.get("jobs") if isinstance(record, dict) else record
        if not isinstance(jobs, list) or not all(isinstance(j, dict) and ("num" in j or "number" in j) for j in jobs):
            raise ReportError(f"{path / 'sweep.json'}: expected a list of jobs, each with its number ('num')")
        sweep_dir = record.get("sweep_dir") if isinstance(record, dict) else None
        for job in jobs:
            folder = _job_folder(path, job, sweep_dir)
            seen.add(folder.resolve())
            if is_run_dir(folder):
                runs.append(read_run(folder, job))
            else:
                runs.append(Run(path=folder, overrides=[str(o) for o in job.get("overrides") or []],
                                status=str(job.get("status") or "incomplete"),
                                error=job.get("error") or "the job's run folder is missing"))
    others = [p.parent.parent for p in path.glob("**/.hydra/config.yaml") if p.parent.parent.resolve() not in seen]
    others.sort(key=lambda p: [(0, int(x), "") if x.isdigit() else (1, 0, x) for x in p.relative_to(path).parts])
    runs += [read_run(p) for p in others]
    if not runs:
        raise ReportError(f"{path}: a sweep folder without run folders (0/, 1/, …)")
    return runs


def collect(dirs: list[str | Path]) -> list[Run]:
    """Every run of the given run and sweep folders, each once."""
    if not dirs:
        raise ReportError("no folder given: pass run folders (outputs/<date>/<time>) or sweep folders (multirun/…)")
    runs, seen = [], set()
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ReportError(f"{d}: no such folder")
        if is_run_dir(d):
            found = [read_run(d)]
        elif is_sweep_dir(d):
            found = read_sweep(d)
        else:
            inside = [p for p in sorted(d.iterdir()) if p.is_dir() and (is_run_dir(p) or is_sweep_dir(p))]
            hint = f"; it holds {len(inside)} run or sweep folders: pass those (e.g. {d}/*)" if inside else ""
            raise ReportError(f"{d}: neither a run folder (with .hydra/config.yaml) nor a sweep folder (with "
                              f"multirun.yaml and numbered run folders){hint}")
        for run in found:
            if run.path.resolve() not in seen:
                seen.add(run.path.resolve())
                runs.append(run)
    return runs


@dataclass
class Floor:
    """What real held-out images score (evaluate.py floor=DATA): the row a data set's runs sit above."""
    path: Path
    data: str                       # the data set's config name, as the runs' data
    held_out: str                   # the split the images came from
    n: int
    features: str | None            # the network behind fid / kid
    metrics: dict[str, float]       # metric name (no val/ prefix) -> value

    @property
    def label(self) -> str:
        return f"real {self.held_out} images (floor)"


def read_floor(path: str | Path) -> Floor:
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"--floor {path}: no such file (python evaluate.py floor=DATA writes one)")
    found = _json(path)
    keys = ("floor", "held_out", "n", "features", "metrics")
    if not isinstance(found, dict) or any(k not in found for k in keys) or not isinstance(found["metrics"], dict):
        raise ReportError(f"--floor {path}: expected the JSON of `python evaluate.py floor=DATA` (keys "
                          f"{', '.join(keys)})")
    return Floor(path, str(found["floor"]), str(found["held_out"]), int(found["n"]), found["features"],
                 {str(k): float(v) for k, v in found["metrics"].items() if v is not None})


def match_floors(floors: list[Floor], groups: dict[str, list[Group]]) -> dict[str, list[Floor]]:
    """The floors by data set, each checked against that data set's runs: the same feature network and N, or
    its numbers do not compare."""
    out: dict[str, list[Floor]] = {}
    for f in floors:
        if f.data not in groups:
            raise ReportError(f"--floor {f.path}: it scores data set {f.data!r}, which no given run trains on "
                              f"({', '.join(groups) or 'none completed'})")
        for g in groups[f.data]:
            for r in g.runs:
                n = (r.hparams.get("metrics") or {}).get("n")
                features = r.hparams.get("metrics/features")
                if (features is not None and features != f.features) or (n is not None and int(n) != f.n):
                    raise ReportError(f"--floor {f.path}: {f.features}, N = {f.n}; run {r.path} has {features}, "
                                      f"N = {n}: numbers of different networks or N do not compare (rerun "
                                      f"evaluate.py floor={f.data} with the runs' metrics.n and metrics.features)")
        out.setdefault(f.data, []).append(f)
    return out


def group(runs: list[Run]) -> dict[str, list[Group]]:
    """Completed runs by data set, then by setting (overrides minus seed=), in order of first appearance. Each
    group's label is its overrides minus those all groups of its data set share."""
    out: dict[str, dict[tuple[str, ...], Group]] = {}
    for run in runs:
        if run.completed:
            g = out.setdefault(run.data, {}).setdefault(run.setting, Group(run.data, run.setting, []))
            g.runs.append(run)
    result = {}
    for data, groups in out.items():
        common = set.intersection(*(set(g.setting) for g in groups.values()))
        for g in groups.values():
            g.runs.sort(key=lambda r: (r.seed is None, r.seed, str(r.path)))
            g.label = " ".join(o for o in g.setting if o not in common) or "(the shared overrides only)"
        result[data] = list(groups.values())
    return result


def shared(groups: list[Group]) -> list[str]:
    """The overrides every group of a data set has (in the first group's order)."""
    common = set.intersection(*(set(g.setting) for g in groups))
    return [o for o in groups[0].setting if o in common]
