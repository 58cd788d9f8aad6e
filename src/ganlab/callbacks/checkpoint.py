"""Checkpoints every `every` iterations and at the end of the run, written atomically (see checkpoint_io).
Never with NaN/inf weights: those raise Diverged instead, so last.ckpt stays the last good one.

`best` (a val/* metric, e.g. val/fid) also keeps checkpoints/best.ckpt: the checkpoint of the evaluation where
that metric was best so far (lower or higher as metrics/registry.py says). GAN quality swings
between evaluations and can collapse late (experiment=fmnist_best's comment), so the last checkpoint is not
always the one to keep. The metric, its best value and that iteration are this callback's state in every
checkpoint, so a resumed run compares against the same record (one resumed with another metric starts anew)."""
from __future__ import annotations

from itertools import chain
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from ..config import ConfigError
from ..divergence import Diverged, all_finite
from ..metrics import registry
from ..metrics.callback import Metrics
from .publish import on_cadence


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

    def __init__(self, dirpath: str, every: int = 1000, keep: bool = False, best: str | None = None):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if best is not None and registry.find(best) is None:
            logged = ", ".join(sorted(registry.logged()))
            raise ValueError(f"best must be null or one of the logged metrics ({logged}), got {best!r}: e.g. "
                             f"callbacks.checkpoint.best=val/fid")
        self.dirpath, self.every, self.keep, self.best = Path(dirpath), int(every), bool(keep), best
        self.record: dict = {"value": None, "iteration": None}  # the best value so far and where (state_dict)
        self.metrics: Metrics | None = None  # the run's Metrics callback (on_fit_start), when best is set

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.best is None:
            return
        metrics = [c for c in trainer.callbacks if isinstance(c, Metrics)]
        toy = len(trainer.datamodule.shape) == 1
        if not metrics or registry.find(self.best).data.toy != toy:
            why = "metrics=none evaluates nothing" if not metrics else \
                f"{'toy' if toy else 'image'} data never logs it"
            raise ConfigError(f"callbacks.checkpoint.best={self.best}: {why}; set callbacks.checkpoint.best=null "
                              f"or a metric this run logs")
        self.metrics = metrics[0]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if not pl_module.at_iteration_end:
            return
        # the metric is looked at where an evaluation was due (on rank zero: metrics/callback.py), on every rank
        improved = self.best is not None and on_cadence(pl_module, self.metrics.every) and self._improved(trainer, it)
        if on_cadence(pl_module, self.every):
            if pl_module.final != "signal":  # a signal's last.ckpt is written already, first (callbacks/stop.py)
                save_good(trainer, pl_module, self.dirpath / "last.ckpt")
            if self.keep:
                trainer.save_checkpoint(self.dirpath / f"iter_{it:07d}.ckpt", weights_only=False)
        if improved:
            save_good(trainer, pl_module, self.dirpath / "best.ckpt")

    def _improved(self, trainer, it: int) -> bool:
        """Whether this iteration's evaluation (on rank zero, metrics/callback.py) beat the record, which it
        then holds; the same answer on every rank (checkpoints are collective)."""
        done = self.metrics.last  # rank zero's evaluations; None on the other ranks
        v = done[1].get(self.best) if done is not None and done[0] == it else None  # None: none at `it`, or it failed
        better = v is not None and v == v and (self.record["value"] is None or (
            v > self.record["value"] if registry.higher_is_better(self.best) else v < self.record["value"]))
        better, v = trainer.strategy.broadcast((better, v), src=0)
        if better:
            self.record = {"value": v, "iteration": it}
        return better

    def state_dict(self) -> dict:
        return {"metric": self.best, **self.record} if self.best is not None else {}  # {}: Lightning stores none

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("metric") == self.best:  # a record of another metric is no record of this one
            self.record = {"value": state_dict.get("value"), "iteration": state_dict.get("iteration")}
