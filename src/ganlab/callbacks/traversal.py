"""InfoGAN's latent-traversal grids (Chen et al. 2016, figure 2): for each continuous code j, one grid with a
row per value of the categorical code and a column per value of code j (evenly from -2 to 2 standard
deviations), every other latent fixed: samples/traversal_c<j>_iter_NNNNNNN.png, every `every` iterations and
at the end, and to the loggers that take images (`traversal_c<j>`). Without continuous codes: one grid, a row
per category and a column per draw of z (`traversal_cat`). Images only (toy data: none). A grid that cannot be written costs a warning, never the run."""
from __future__ import annotations

from pathlib import Path

import lightning as L

from ..images import save_grid
from .publish import Publisher, due


class Traversal(L.Callback):
    def __init__(self, dirpath: str, every: int = 500, values: int = 8):
        if values < 2:
            raise ValueError(f"callbacks.traversal.values must be >= 2 (columns of the grid), got {values}")
        self.dirpath, self.every, self.values = Path(dirpath), int(every), int(values)
        self.publish = Publisher("traversal")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not due(trainer, pl_module, self.every):
            return
        it = pl_module.iteration
        for code in range(pl_module.continuous) or [None]:
            name = f"traversal_c{code}" if code is not None else "traversal_cat"
            x = pl_module.traversal(code, self.values)  # (K * V, C, H, W)
            if x.dim() != 4:  # toy points have no grid picture: their scatter plot (samples) shows the codes' effect
                return
            self.publish(trainer, name, it, self.dirpath / f"{name}_iter_{it:07d}.png",
                         lambda path: save_grid(x, path, nrow=self.values))
