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
    """One W&B run per training run, however often the run is continued: its id is kept in
    <save_dir>/wandb/run_id and a continued run resumes it (resume="allow"; offline, each process writes an
    offline-run-*-<id> folder, and `wandb sync` uploads them in order into the one run). W&B's step is the
    generator iteration (logged with each row as `trainer/global_step` too), so it goes on where the run goes on.
    A process killed after its last checkpoint has logged some iterations that the continued run computes
    again (the same values, resume being exact): those up to the last one already sent (<save_dir>/wandb/
    last_step) are not sent twice, so the history stays strictly increasing, with no duplicates."""

    def __init__(self, save_dir: str, **kwargs):
        folder = Path(save_dir) / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        self._id_file, self._step_file = folder / "run_id", folder / "last_step"
        run_id = self._id_file.read_text().strip() if self._id_file.is_file() else None
        if not run_id:
            run_id = secrets.token_hex(4)  # W&B ids: [a-z0-9], at most 64 characters
            write_atomically(self._id_file, lambda tmp: tmp.write_text(run_id + "\n"))
        self.recorded = int(self._step_file.read_text()) if self._step_file.is_file() else 0
        self.skip_through = self.recorded  # steps the processes before this one sent
        super().__init__(save_dir=save_dir, id=run_id, resume="allow", **kwargs)

    def _send(self, row: dict, step: int) -> None:
        if step <= self.skip_through:
            return
        self.experiment.log({**row, "trainer/global_step": step}, step=step)
        if step > self.recorded:
            self.recorded = step
            write_atomically(self._step_file, lambda tmp: tmp.write_text(f"{step}\n"))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._send(dict(metrics), int(step))

    def log_image(self, key: str, images: list, step: int | None = None, **kwargs) -> None:
        import wandb

        self._send({key: [wandb.Image(image) for image in images]}, int(step))


def wandb_logger(project: str, save_dir: str, name: str | None = None, group: str | None = None,
                 tags: Sequence[str] = (), start: int = 0) -> Guarded:
    """W&B, started now (so a failure shows before training). Mode: WANDB_MODE when set (CI: disabled), else
    online with credentials and offline without (then `wandb sync <save_dir>/wandb/offline-run-*`). `start`
    (the iteration a continued run goes on after) is not needed: the run's own files say what was sent."""
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
