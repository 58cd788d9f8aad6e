"""Metrics computed during training, every `every` iterations and at the end, on a fixed latent batch of
the generator (EMA if kept), logged as val/* at step = iteration (log.py)."""
from __future__ import annotations

import lightning as L

from ..log import emit
from .modes import mode_coverage


class ModeCoverage(L.Callback):
    """val/modes and val/hq on toy mixtures (data with `modes` and `std`); a no-op on other data."""

    def __init__(self, every: int = 500, n: int = 2500, k: float = 3.0, min_count: int = 1):
        self.every, self.n, self.k, self.min_count = int(every), int(n), float(k), int(min_count)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        dm = trainer.datamodule
        if getattr(dm, "modes", None) is None or not pl_module.at_iteration_end:
            return
        it = pl_module.iteration
        if it % self.every == 0 or it >= pl_module.iterations:
            m = mode_coverage(pl_module.sample(self.n), dm.modes, dm.std, self.k, self.min_count)
            emit(trainer, it, {f"val/{k}": v for k, v in m.items()})
