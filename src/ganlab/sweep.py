"""What a run leaves for the scripts that sweep it: its objective, and the sweep's summary. Each run's
status.json (run_folder.py) says how it ended.

`optimized_metric` (root config) names the metric a sweeper optimizes: `train.main` returns its final value.
`check_objective` refuses, before training, a name no run of this config can log; an evaluation of a
sample-quality objective that fails fails the run (metrics/callback.py), and a completed run that still lacks
the objective is a config_error. A run that did not complete returns None: Optuna's
sweeper (hydra-optuna-sweeper 1.3.0) records a value that is no float as a failed trial, which never becomes the
best, and the study goes on (NaN would crash it: the plugin then tells optuna a failed trial *with* a value).
If every trial fails there is no best trial and the sweeper itself stops with optuna's error.

`SweepReport`, a Hydra callback (`hydra.callbacks` in conf/train.yaml), runs once at the end of a multirun in
the process that launched it (also with the submitit launchers, whose jobs run elsewhere). It reads every job
folder under the sweep folder, writes `<sweep_dir>/sweep.json` (each job: number, folder, overrides, status,
error; a job that left no status.json, e.g. killed or out of memory, is `failed`), prints one line per failed
job, and exits with status 1 if any job did not complete, so scripts notice. Left to Hydra 1.3, a job's
exception is kept until its launcher batch has run (with the basic sweeper: the whole grid), then re-raised:
exit status 1 with that one traceback, no word on the other jobs, later batches never launched (Optuna's
sweeper, at its default max_failure_rate=0, re-raises after its batch too); and a job's sys.exit ends the whole
sweep at once. So a failed job returns normally (train.main) and this callback reports it.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import get_class
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from .checkpoint_io import write_atomically
from .config import ConfigError
from .metrics import registry
from .metrics.registry import Data
from .run_folder import in_use, read_status


def check_objective(cfg: DictConfig, direction: str | None = None) -> None:
    """`optimized_metric` must be a metric this config's run can log: a sample-quality metric needs the metrics
    callback on and the kind of data it is computed for; any other name must be one the model's module declares
    it logs (GANModule.logged: losses, penalties, a variant's own val/*). `direction`, the sweeper's
    (hydra.sweeper.direction: minimize | maximize), must go the way a sample-quality metric improves: Optuna
    minimizing val/recall would search for the worst settings."""
    name = cfg.get("optimized_metric")
    if name is None:
        return
    if not isinstance(name, str) or not name.startswith(("train/", "val/")):
        raise ConfigError(f"optimized_metric={name!r} is not a metric name: use one as logged in csv/metrics.csv, "
                          f"e.g. optimized_metric=val/w1 (toy data) or optimized_metric=val/fid (images)")
    # The sample-quality metrics are registered (metrics/registry.py) with their data and direction. Losses
    # (train/*) and a variant's own val/* metrics (SGAN's val/accuracy, CycleGAN's val/cycle) depend on the model:
    # its module declares them (GANModule.logged).
    family = registry.find(name)
    higher = None if family is None else registry.higher_is_better(name)
    want = None if higher is None else "maximize" if higher else "minimize"
    if isinstance(direction, str) and want is not None and direction != want:
        raise ConfigError(f"optimized_metric={name} is better {'higher' if higher else 'lower'}, but "
                          f"hydra.sweeper.direction={direction}: set hydra.sweeper.direction={want}")
    if family is None:
        try:
            logged = get_class(cfg.model._target_).logged(cfg)
        except (ImportError, ValueError) as e:  # a _target_ that does not import: named by hydra's message
            raise ConfigError(f"optimized_metric={name}: cannot tell what this run logs: {e}") from None
        if name not in logged:
            raise ConfigError(f"optimized_metric={name}: a run of this config never logs it: pick one it logs "
                              f"({', '.join(sorted(logged))}) or a sample-quality metric (val/w1 on toy data, "
                              f"val/fid on images)")
        return
    if not (cfg.get("metrics") and "_target_" in cfg.metrics):
        raise ConfigError(f"optimized_metric={name} is a sample-quality metric, but metrics=none computes none: "
                          f"remove metrics=none (metrics.every=N sets how often it is computed)")
    from .data.toy import Mixture, Toy  # the data's class decides which metrics the suite computes

    try:
        data_cls = get_class(cfg.data._target_)
    except (ImportError, ValueError) as e:
        raise ConfigError(f"data._target_: {e}") from None
    toy = issubclass(data_cls, Toy)
    if toy and not family.data.toy:
        raise ConfigError(f"optimized_metric={name} is an image metric, but data={data_cls.__name__} is toy data: "
                          f"use optimized_metric=val/w1")
    if not toy and family.data.toy:
        raise ConfigError(f"optimized_metric={name} is a toy-data metric, but data={data_cls.__name__} holds "
                          f"images: use optimized_metric=val/fid")
    if family.data is Data.MIXTURE and toy and not issubclass(data_cls, Mixture):
        raise ConfigError(f"optimized_metric={name} counts the modes of a mixture, but data={data_cls.__name__} "
                          f"has none: use optimized_metric=val/w1, or data=grid25 / data=ring8")


def objective(cfg: DictConfig, metrics: Mapping[str, float]) -> float | None:
    """The final value of `optimized_metric` (None when unset)."""
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name}: the run never logged it (it logged "
                          f"{', '.join(sorted(metrics))}): pick one of those")
    return float(metrics[name])


FAILED_OBJECTIVE = None  # what a run that did not complete returns to the sweeper: Optuna marks it failed


def _job(folder: Path) -> dict[str, Any]:
    hydra_cfg = OmegaConf.load(folder / ".hydra" / "hydra.yaml")
    status = read_status(folder)
    if status is not None and status["status"] == "running" and not in_use(folder):
        status = {**status, "status": "killed", "error": "killed while it ran (status.json says running, and no "
                                                         "launch holds the folder); the same command continues it"}
    elif status is None:
        status = {"status": "failed", "error": "no status.json: the job died before it finished (killed, out of "
                                               "memory, or the launcher failed); see its log",
                  "overrides": list(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))}
    return {"num": int(hydra_cfg.hydra.job.num), "dir": str(folder), "overrides": status["overrides"],
            "status": status["status"], "error": status["error"]}


class SweepReport(Callback):
    """At the end of a multirun: `<sweep_dir>/sweep.json`, a line per failed job, exit status 1 if any."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:  # a DDP rank that Lightning started by re-running this command line, `-m` too
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sorted((_job(hydra_dir.parent.parent) for hydra_dir in sweep_dir.glob("**/.hydra/hydra.yaml")),
                      key=lambda job: job["num"])
        failed = [job for job in jobs if job["status"] != "completed"]
        report = {"sweep_dir": str(sweep_dir), "jobs": jobs, "completed": len(jobs) - len(failed),
                  "failed": len(failed)}
        path = write_atomically(sweep_dir / "sweep.json",
                                lambda tmp: tmp.write_text(json.dumps(report, indent=2) + "\n"))
        shared = set.intersection(*(set(job["overrides"]) for job in jobs)) if len(jobs) > 1 else set()
        for job in failed:  # named by the overrides that tell it from the other jobs
            own = " ".join(o for o in job["overrides"] if o not in shared)
            print(f"ganlab: job {job['num']} ({own}) {job['status']}: {job['error']}", file=sys.stderr)
        if failed:
            sys.exit(f"ganlab: sweep: {len(failed)} of {len(jobs)} jobs did not complete; see {path}")
        print(f"ganlab: sweep: all {len(jobs)} jobs completed; see {path}", file=sys.stderr)
