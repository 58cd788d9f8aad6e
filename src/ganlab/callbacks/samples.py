"""Sample grids (images) or scatter plots (toy data) every `every` iterations and at the end of the run,
from a fixed latent batch, so successive files show the same latents as training proceeds."""
from __future__ import annotations

from pathlib import Path

import lightning as L

from ..images import save_samples


class SampleGrid(L.Callback):
    def __init__(self, dirpath: str, every: int = 500, n: int = 64):
        self.dirpath, self.every, self.n = Path(dirpath), int(every), int(n)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if not trainer.is_global_zero or not pl_module.at_iteration_end:
            return
        if it % self.every == 0 or it >= pl_module.iterations:
            x = pl_module.sample(self.n)
            real = trainer.datamodule.real(max(self.n, 1000)) if x.dim() == 2 else None
            save_samples(x, self.dirpath / f"iter_{it:07d}.png", real)
