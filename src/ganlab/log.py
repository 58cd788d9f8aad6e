"""Writing metrics: straight to the run's loggers, at step = the loop's iteration (generator iterations).

Lightning's self.log keeps re-emitting a step value on later batches until it is logged again, so a loss
computed every n_critic-th batch (or a metric every 500 iterations) would appear on rows where it was not
computed; and its step is the batch count, not the iteration. ganlab logs each value once, where it belongs.
"""
from __future__ import annotations

import lightning as L
import torch


def emit(trainer: L.Trainer, iteration: int, metrics: dict[str, float]) -> None:
    clock = getattr(trainer.lightning_module, "clock", None)
    if clock is not None:  # every row says when it was written, in training seconds (clock.py)
        metrics = {**metrics, "time/seconds": clock.seconds()}
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=iteration)
    trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
