"""A two-way translator's round trips on fixed held-out images (model=cyclegan), every `every` iterations and at
the end of the run:

- samples/translations_iter_NNNNNNN.png: six rows of `n` images, A | A->B | A->B->A | B | B->A | B->A->B (the
  same held-out images every time, so successive files show training progress), also to the loggers that take
  images (`translations`);
- val/cycle_a, val/cycle_b: the mean L1 cycle error |G_ba(G_ab(a)) - a| and |G_ab(G_ba(b)) - b| (pixels in
  [-1, 1]) over `cycle_n` held-out images of each domain, and val/cycle, their mean: how well the translators
  invert each other on images they were not trained on.

A grid that cannot be written costs a warning, never the run."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from ..images import save_grid
from ..log import emit
from .publish import Publisher, due


class Translations(L.Callback):
    def __init__(self, dirpath: str, every: int = 500, n: int = 8, cycle_n: int = 1000):
        if every < 1 or n < 1 or cycle_n < 1:
            raise ValueError(f"callbacks.translations.every, n and cycle_n must be >= 1, got {every}, {n}, {cycle_n}")
        self.dirpath, self.every, self.n, self.cycle_n = Path(dirpath), int(every), int(n), int(cycle_n)
        self.publish = Publisher("translations")

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not due(trainer, pl_module, self.every):
            return
        it = pl_module.iteration
        dm, device = trainer.datamodule, pl_module.device
        rows, errors = [], {}
        for src, there, back in (("a", "ab", "ba"), ("b", "ba", "ab")):
            x = dm.held_out(src, max(self.n, self.cycle_n), device)  # (N, C, H, W)
            moved = pl_module.translate(there, x)  # (N, C, H, W)
            returned = pl_module.translate(back, moved)
            errors[f"val/cycle_{src}"] = (returned - x).abs().mean().item()
            rows += [x[:self.n], moved[:self.n], returned[:self.n]]
        errors["val/cycle"] = 0.5 * (errors["val/cycle_a"] + errors["val/cycle_b"])
        emit(trainer, it, errors)
        columns = min(len(r) for r in rows)  # a domain with fewer than n held-out images
        grid = torch.cat([r[:columns] for r in rows])  # (6 * columns, C, H, W)
        self.publish(trainer, "translations", it, self.dirpath / f"translations_iter_{it:07d}.png",
                     lambda path: save_grid(grid, path, nrow=columns))
