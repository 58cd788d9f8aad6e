"""The same command continues the same run: a run folder (Hydra's output folder: `hydra.run.dir=<run>`, or a
job folder of a multirun relaunched into the same `hydra.sweep.dir`) that holds checkpoints/last.ckpt continues
from it. This is what a requeued SLURM job does, and what a user does after a crash, a kill or a time limit.

- status.json says `completed`: nothing to train; the run's recorded metrics stand (a relaunched sweep skips it).
- Its own last.ckpt exists: the run continues from it, also when the command names a `ckpt_path=` (that is where
  the run *started*; its own checkpoint is newer). The checkpoint's config must be the command's, up to the keys
  in `MAY_DIFFER` (how long this launch may take, how it reports): other settings in an old folder are one
  config error, not a silent mix of two runs.
- Temporary files that a killed writer left (checkpoint_io.write_atomically's `.<name>.<pid>-<hex>.tmp`) are
  removed from the run folder's checkpoints/ and the folder itself: they were never a file anyone could read.

Otherwise the run starts anew (from `ckpt_path=` if given). The loggers then keep what the folder already has up
to the checkpoint's iteration (csv_logger.py, loggers.py).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from .checkpoint_io import read_checkpoint
from .config import ConfigError

# Keys a continued run may change: the time limit of a launch, the progress display, the loggers, the
# checkpoint a run started from.
MAY_DIFFER = ("ckpt_path", "trainer.max_time", "callbacks.stop.max_time", "trainer.enable_progress_bar",
              "callbacks.progress", "logger")
TEMPORARY = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")


class Plan(NamedTuple):
    ckpt: str | None  # the checkpoint to continue (or start) from, None: a new run
    continued: bool  # True: the run folder's own checkpoint, the same run going on
    completed: dict | None  # the status.json of a run that already completed (then nothing to train)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def differences(saved: Mapping, now: Mapping) -> list[str]:
    """`key: saved -> now` for every setting that differs, the keys of MAY_DIFFER left out."""
    a, b = _flat(saved), _flat(now)
    keys = sorted(k for k in set(a) | set(b)
                  if a.get(k, "<unset>") != b.get(k, "<unset>") and not _may_differ(k))
    return [f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}" for k in keys]


def remove_temporary(folder: Path) -> None:
    for f in list(folder.glob(".*.tmp")) if folder.is_dir() else []:
        if TEMPORARY.match(f.name):
            f.unlink(missing_ok=True)


def plan(cfg: DictConfig, run_dir: str | Path, overrides: list[str], clean: bool = True) -> Plan:
    """What this launch does in `run_dir`; `clean`: remove stale temporary files (rank zero only)."""
    run_dir = Path(run_dir)
    status_file = run_dir / "status.json"
    status = json.loads(status_file.read_text()) if status_file.is_file() else None
    if status is not None and status.get("status") == "completed":
        was, now = (sorted(o for o in os_ if not _may_differ(o)) for os_ in (status.get("overrides", []), overrides))
        if was != now:
            raise ConfigError(f"hydra.run.dir={run_dir} holds a completed run of other settings ({' '.join(was)}), "
                              f"not this command's ({' '.join(now)}): use a new folder (hydra.run.dir=...)")
        return Plan(None, False, status)
    dirpath = OmegaConf.select(cfg, "callbacks.checkpoint.dirpath") or str(run_dir / "checkpoints")
    last = Path(dirpath) / "last.ckpt"
    if clean:
        remove_temporary(Path(dirpath))
        remove_temporary(run_dir)
    if not last.is_file():
        return Plan(cfg.get("ckpt_path"), False, None)
    saved = read_checkpoint(last, "the run folder's checkpoints/last.ckpt").get("config", {})
    changed = differences(saved, OmegaConf.to_container(cfg, resolve=True))
    if changed:
        raise ConfigError(f"hydra.run.dir={run_dir} holds a run of other settings, which this command would "
                          f"continue ({'; '.join(changed[:4])}{'; ...' if len(changed) > 4 else ''}): the same "
                          f"command continues a run; use a new folder (hydra.run.dir=...) for new settings")
    return Plan(str(last), True, None)


def _may_differ(setting: str) -> bool:
    """A key (`trainer.max_time`) or a command-line override (`+trainer.max_time=...`) a continued run may change."""
    key = setting.lstrip("+~").split("=", 1)[0]
    return any(key == m or key.startswith(m + ".") for m in MAY_DIFFER) or key.startswith("hydra.")
