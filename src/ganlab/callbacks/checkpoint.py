"""Checkpoints every `every` iterations and at the end of the run, written atomically (see checkpoint_io)."""
from __future__ import annotations

from pathlib import Path

import lightning as L


class Checkpointer(L.Callback):
    def __init__(self, dirpath: str, every: int = 1000, keep: bool = False):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.dirpath, self.every, self.keep = Path(dirpath), int(every), bool(keep)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if pl_module.at_iteration_end and (it % self.every == 0 or it >= pl_module.iterations):
            trainer.save_checkpoint(self.dirpath / "last.ckpt", weights_only=False)  # all ranks call; rank 0 writes
            if self.keep:
                trainer.save_checkpoint(self.dirpath / f"iter_{it:07d}.ckpt", weights_only=False)
