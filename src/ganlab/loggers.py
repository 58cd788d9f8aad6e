"""Loggers that degrade with a warning: W&B and TensorBoard are on request, and neither may kill a run.

Each is built by a factory named in `conf/logger/*.yaml` and wrapped in `Guarded`: the first exception it
raises (starting it: import error, network, bad key; or any later log call) prints one warning, closes it as
well as it can, and training goes on without it. CSV (always on, csv_logger.py) is unwrapped.

Like Lightning's loggers, every call logs on rank zero only. Steps are generator iterations (log.py).
"""
from __future__ import annotations

import netrc
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from .checkpoint_io import write_atomically


class Guarded(Logger):
    """A Lightning logger started by `start()`; any failure costs it (with one warning), never the run."""

    def __init__(self, name: str, start: Callable[[], Logger]):
        super().__init__()
        self._name = name
        self.inner: Logger | None = None  # None once it failed (or never started)
        try:
            self.inner = start()
        except Exception as e:
            self._fail("start", e)

    def _fail(self, what: str, error: Exception) -> None:
        rank_zero_warn(f"{self._name} logger: {what} failed ({type(error).__name__}: {error}); "
                       f"training goes on without it")
        inner, self.inner = self.inner, None
        if inner is not None:
            try:
                _close(inner, "failed")
            except Exception:
                pass  # already warned once; a broken logger may not close either

    def _try(self, what: str, call: Callable[[Logger], Any]) -> None:
        if self.inner is None:
            return
        try:
            call(self.inner)
        except Exception as e:
            self._fail(what, e)

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str | None:
        return self.inner.version if self.inner is not None else None

    @property
    def save_dir(self) -> str | None:
        return self.inner.save_dir if self.inner is not None else None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._try("log_metrics", lambda lg: lg.log_metrics(metrics, step))

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        self._try("log_hyperparams", lambda lg: lg.log_hyperparams(params))

    @rank_zero_only
    def log_image(self, key: str, images: Sequence[np.ndarray], step: int) -> None:
        """uint8 images (H, W, 3) under `key` at `step` (WandbLogger.log_image's signature)."""
        self._try("log_image", lambda lg: _log_image(lg, key, images, step))

    @rank_zero_only
    def save(self) -> None:
        self._try("save", lambda lg: lg.save())

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self._try("finalize", lambda lg: _close(lg, status))


def _log_image(logger: Logger, key: str, images: Sequence[np.ndarray], step: int) -> None:
    if isinstance(logger, WandbLogger):
        logger.log_image(key, list(images), step=step)
    elif isinstance(logger, TensorBoardLogger):
        for image in images:
            logger.experiment.add_image(key, image, step, dataformats="HWC")


def _close(logger: Logger, status: str) -> None:
    logger.finalize(status)
    if isinstance(logger, WandbLogger):  # Lightning leaves the run open; the next run in this process needs it closed
        logger.experiment.finish(exit_code=0 if status == "success" else 1)


def has_wandb_credentials() -> bool:
    """WANDB_API_KEY, or a ~/.netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class RunWandb(WandbLogger):
    """One W&B run per training run, however often it is continued: the id is kept in <save_dir>/wandb/run_id
    and a continued run resumes it (resume="allow"; offline, each process writes an offline-run-*-<id> folder,
    and `wandb sync` uploads them in order into the one run). W&B's step is the generator iteration (also logged
    as `trainer/global_step`), so the step axis goes on where the run goes on. A continued run logs again the
    iterations after its checkpoint; W&B keeps the first value of a step it already has (the same value: resume
    is exact) and drops the repeat with a warning. A process killed with SIGKILL loses what W&B's own process
    had not written yet; metrics.csv and TensorBoard (flushed at every checkpoint) keep it."""

    def __init__(self, save_dir: str, **kwargs):
        if kwargs.get("mode") == "disabled":  # nothing is written (CI)
            super().__init__(save_dir=save_dir, **kwargs)
            return
        id_file = Path(save_dir) / "wandb" / "run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else ""
        if not run_id:
            run_id = secrets.token_hex(4)  # W&B ids: [a-z0-9], at most 64 characters
            write_atomically(id_file, lambda tmp: tmp.write_text(run_id + "\n"))
        super().__init__(save_dir=save_dir, id=run_id, resume="allow", **kwargs)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.experiment.log({**metrics, "trainer/global_step": step}, step=int(step))

    def log_image(self, key: str, images: list, step: int | None = None, **kwargs) -> None:
        import wandb

        self.experiment.log({key: [wandb.Image(image) for image in images], "trainer/global_step": step},
                            step=int(step))


def wandb_logger(project: str, save_dir: str, name: str | None = None, group: str | None = None,
                 tags: Sequence[str] = (), start: int = 0) -> Guarded:
    """W&B, started now (so a failure shows before training). Mode: WANDB_MODE when set (CI: disabled), else
    online with credentials and offline without (then `wandb sync <save_dir>/wandb/offline-run-*`). `start`, the
    iteration a continued run goes on after, is W&B's own business (RunWandb)."""
    # Passed explicitly: wandb reads WANDB_MODE once per process, so a later change (multirun) would go unseen.
    mode = os.environ.get("WANDB_MODE") or ("online" if has_wandb_credentials() else "offline")

    def start_run() -> WandbLogger:
        logger = RunWandb(project=project, save_dir=save_dir, name=name, group=group, tags=list(tags), mode=mode)
        logger.experiment  # wandb.init on rank zero
        return logger

    return Guarded("wandb", start_run)


def tensorboard_logger(save_dir: str, start: int = 0) -> Guarded:
    """TensorBoard event files in <save_dir>/tensorboard/; the config goes to its hparams.yaml (no fake
    hp_metric scalar). A continued run (`start` = the iteration it goes on after) appends to the same folder
    and hides the events a killed process wrote after its last checkpoint (SummaryWriter's purge_step)."""

    def start_writer() -> TensorBoardLogger:
        logger = TensorBoardLogger(save_dir=save_dir, name="tensorboard", version="", default_hp_metric=False,
                                   purge_step=start + 1 if start else None)
        logger.experiment  # opens the event file on rank zero
        return logger

    return Guarded("tensorboard", start_writer)
