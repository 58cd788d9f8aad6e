"""The same command continues the same run: a run folder (Hydra's output folder: `hydra.run.dir=<run>`, or a
job folder of a multirun relaunched into the same `hydra.sweep.dir`) that holds checkpoints/last.ckpt continues
from it. This is what a requeued SLURM job does, and what a user does after a crash, a kill or a time limit.

- status.json says `completed`: nothing to train; the run's recorded metrics stand (a relaunched sweep skips it).
- Its own last.ckpt is at the run's last iteration: the run is complete, whatever status.json says or whether it
  is there (a launch killed between its final checkpoint and its status): nothing to train, never an iteration
  past `iterations`. Its final metrics are the last values in the rows the checkpoint keeps (csv_logger.py).
- Its own last.ckpt is earlier: the run continues from it, also when the command names a `ckpt_path=` (that is
  where the run *started*; its own checkpoint is newer). The checkpoint's config must be the command's, up to the
  keys in `MAY_DIFFER` (how long this launch may take, how it reports) and up to where the folder is: a moved or
  copied run folder continues from its new place (paths inside the folder count relative to it). Other settings
  in an old folder are one config error, not a silent mix of two runs.

Otherwise the run starts anew (from `ckpt_path=` if given). `plan` reads and decides; it writes nothing (a
refused launch leaves the folder as it was: run_folder.py). The loggers then keep what the folder already has
up to the checkpoint's iteration (csv_logger.py, loggers.py).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from .checkpoint_io import read_checkpoint
from .config import ConfigError
from .csv_logger import final_values, parse_rows, read_rows
from .run_folder import read_status

# Keys a continued run may change: the time limit of a launch, the progress display, the loggers, the
# checkpoint a run started from. callbacks.stop: train() adds the stop callback to every run itself, so a saved
# config that also lists it in the callbacks group differs there harmlessly.
MAY_DIFFER = ("ckpt_path", "trainer.max_time", "callbacks.stop", "trainer.enable_progress_bar",
              "callbacks.progress", "logger")


class Plan(NamedTuple):
    ckpt: str | None  # the checkpoint to continue (or start) from, None: a new run
    continued: bool  # True: the run folder's own checkpoint, the same run going on
    completed: dict | None  # the status of a run that already completed (then nothing to train)
    start: int = 0  # the iteration the run folder's checkpoint is at (0: none)


def iteration_of(state: Mapping) -> int:
    """The generator iteration a ganlab checkpoint was written at."""
    steps, n_critic = state["ganlab_steps"], int(state.get("config", {}).get("model", {}).get("n_critic", 1))
    return int(steps["d_steps"]) // max(n_critic, 1)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def differences(saved: Mapping, now: Mapping) -> list[str]:
    """`key: saved -> now` for every setting that differs, the keys of MAY_DIFFER left out. A path inside the
    saved run's folder (`out_dir`) counts relative to it: a moved or copied folder is the same run."""
    a, b = _flat(_relocated(saved, saved.get("out_dir"), now.get("out_dir"))), _flat(now)
    keys = sorted(k for k in set(a) | set(b)
                  if a.get(k, "<unset>") != b.get(k, "<unset>") and not _may_differ(k))
    return [f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}" for k in keys]


def _relocated(node: Any, old: Any, new: Any) -> Any:
    """`node` with every string that is `old` or a path under it moved under `new`."""
    if not isinstance(old, str) or not isinstance(new, str) or old == new:
        return node
    if isinstance(node, Mapping):
        return {k: _relocated(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_relocated(v, old, new) for v in node]
    if isinstance(node, str) and (node == old or node.startswith(old.rstrip(os.sep) + os.sep)):
        return new + node[len(old):]
    return node


def plan(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> Plan:
    """What this launch does in `run_dir`: a ConfigError when the folder holds a run of other settings."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)  # a damaged one counts as none: the checkpoint says where the run is
    if status is not None and status.get("status") == "completed":
        was, now = (sorted(o for o in os_ if not _may_differ(o)) for os_ in (status.get("overrides", []), overrides))
        if was != now:
            raise ConfigError(f"hydra.run.dir={run_dir} holds a completed run of other settings ({' '.join(was)}), "
                              f"not this command's ({' '.join(now)}): use a new folder (hydra.run.dir=...)")
        return Plan(None, False, status)
    dirpath = OmegaConf.select(cfg, "callbacks.checkpoint.dirpath") or str(run_dir / "checkpoints")
    last = Path(dirpath) / "last.ckpt"
    if not last.is_file():
        return Plan(cfg.get("ckpt_path"), False, None)
    state = read_checkpoint(last, "the run folder's checkpoints/last.ckpt")
    changed = differences(state.get("config", {}), OmegaConf.to_container(cfg, resolve=True))
    if changed:
        raise ConfigError(f"hydra.run.dir={run_dir} holds a run of other settings, which this command would "
                          f"continue ({'; '.join(changed[:4])}{'; ...' if len(changed) > 4 else ''}): the same "
                          f"command continues a run; use a new folder (hydra.run.dir=...) for new settings")
    start = iteration_of(state)
    if start < cfg.iterations:
        return Plan(str(last), True, None, start)
    saved = state.get("metrics_csv")  # the rows up to the checkpoint; else (an older checkpoint) the folder's file
    csv = run_dir / "csv" / "metrics.csv"
    try:
        rows = parse_rows(saved) if saved is not None else read_rows(csv) if csv.is_file() else []
    except (OSError, ValueError):  # damaged: the final metrics are unknown, the run is complete all the same
        rows = []
    return Plan(str(last), True, {"status": "completed", "error": None, "metrics": final_values(rows),
                                  "overrides": overrides}, start)


def _may_differ(setting: str) -> bool:
    """A key (`trainer.max_time`) or a command-line override (`+trainer.max_time=...`) a continued run may change."""
    key = setting.lstrip("+~").split("=", 1)[0]
    return any(key == m or key.startswith(m + ".") for m in MAY_DIFFER) or key.startswith("hydra.")
