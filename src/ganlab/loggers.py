"""Loggers that degrade with a warning: W&B and TensorBoard are on request, and neither may kill a run.

Each is built by a factory named in `conf/logger/*.yaml` and wrapped in `Guarded`: the first exception it
raises (starting it: import error, network, bad key; or any later log call) prints one warning, closes it as
well as it can, and training goes on without it. CSV (always on) is Lightning's own CSVLogger, unwrapped.

Like Lightning's loggers, every call logs on rank zero only. Steps are generator iterations (log.py).
"""
from __future__ import annotations

import netrc
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn


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
        logger.log_image(key, list(images), step=step)  # step goes in as trainer/global_step, a metric
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


def wandb_logger(project: str, save_dir: str, name: str | None = None, group: str | None = None,
                 tags: Sequence[str] = ()) -> Guarded:
    """W&B, started now (so a failure shows before training). Mode: WANDB_MODE when set (CI: disabled), else
    online with credentials and offline without (then `wandb sync <save_dir>/wandb/offline-run-*`)."""
    # Passed explicitly: wandb reads WANDB_MODE once per process, so a later change (multirun) would go unseen.
    mode = os.environ.get("WANDB_MODE") or ("online" if has_wandb_credentials() else "offline")

    def start() -> WandbLogger:
        logger = WandbLogger(project=project, save_dir=save_dir, name=name, group=group, tags=list(tags), mode=mode)
        logger.experiment  # wandb.init on rank zero
        return logger

    return Guarded("wandb", start)


def tensorboard_logger(save_dir: str) -> Guarded:
    """TensorBoard event files in <save_dir>/tensorboard/; the config goes to its hparams.yaml (no fake
    hp_metric scalar)."""

    def start() -> TensorBoardLogger:
        logger = TensorBoardLogger(save_dir=save_dir, name="tensorboard", version="", default_hp_metric=False)
        logger.experiment  # opens the event file on rank zero
        return logger

    return Guarded("tensorboard", start)
