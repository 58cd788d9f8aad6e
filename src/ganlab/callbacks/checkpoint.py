"""Checkpoints every `every` iterations and at the end of the run, written atomically (see checkpoint_io).
Never with NaN/inf weights: those raise Diverged instead, so last.ckpt stays the last good one."""
from __future__ import annotations

from itertools import chain
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from ..divergence import Diverged, all_finite
from .publish import last_iteration


def save_good(trainer: L.Trainer, pl_module: L.LightningModule, path: Path) -> None:
    """Write a checkpoint unless a parameter or buffer (the EMA copy's included) is NaN/inf: then raise Diverged,
    leaving the file at `path` as it was. One host sync per checkpoint. The loggers are flushed first."""
    if not all_finite(chain(pl_module.parameters(), pl_module.buffers())):
        raise Diverged(f"the weights are non-finite (NaN/inf); {path} was not overwritten", pl_module.iteration,
                       pl_module.d_steps)
    if trainer.is_global_zero:  # what the loggers hold up to here is on disk before the checkpoint says it is
        for logger in trainer.loggers:  # (TensorBoard buffers its events; a continued run purges past this one)
            logger.save()
    trainer.save_checkpoint(path, weights_only=False)  # all ranks call; rank 0 writes


class Checkpointer(Checkpoint):
    """Lightning runs Checkpoint callbacks after all others at each batch end, so a checkpoint at iteration N
    comes after that iteration's metrics and samples: a run resumed from it has all of iteration N's rows."""

    def __init__(self, dirpath: str, every: int = 1000, keep: bool = False):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.dirpath, self.every, self.keep = Path(dirpath), int(every), bool(keep)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if pl_module.at_iteration_end and (it % self.every == 0 or last_iteration(pl_module)):
            if pl_module.final != "signal":  # a signal's last.ckpt is written already, first (callbacks/stop.py)
                save_good(trainer, pl_module, self.dirpath / "last.ckpt")
            if self.keep:
                trainer.save_checkpoint(self.dirpath / f"iter_{it:07d}.ckpt", weights_only=False)
