"""Sample grids (images) or scatter plots (toy data) every `every` iterations and at the end of the run,
from a fixed latent batch, so successive files show the same latents as training proceeds. Toy plots show
the critic's value over the plotted area. The same picture goes to each logger that takes images (W&B,
TensorBoard; not CSV) under `samples`, at step = iteration. A grid that cannot be written (disk full, a
read-only folder) costs a warning, once per kind of failure, never the run."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from ..images import save_samples
from .publish import Publisher, due


def critic_of(pl_module: L.LightningModule) -> Callable[[Tensor], Tensor]:
    """points (M, D) on the CPU -> the critic's value D(x) (M,) on the CPU: eval mode, no gradients, on the
    module's device (the critic's training mode is restored after). A packing critic (model.pack = m) sees
    m copies of each point; the points go in pieces of 256, as a batch would."""
    d = pl_module.discriminator

    @torch.no_grad()
    def critic(points: Tensor) -> Tensor:
        was_training = d.training
        d.eval()
        try:
            x = points.to(pl_module.device, pl_module.dtype).repeat_interleave(pl_module.pack, 0)  # (M * m, D)
            # in training-batch-sized pieces: a critic that compares samples (minibatch discrimination) costs B^2
            chunk = 256 * pl_module.pack
            return torch.cat([pl_module.critic(x[i:i + chunk])["logits"].float().cpu()
                              for i in range(0, len(x), chunk)])  # (M,)
        finally:
            d.train(was_training)

    return critic


class SampleGrid(L.Callback):
    def __init__(self, dirpath: str, every: int = 500, n: int = 64):
        self.dirpath, self.every, self.n = Path(dirpath), int(every), int(n)
        self.publish = Publisher("samples")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not due(trainer, pl_module, self.every):
            return
        it = pl_module.iteration
        x = pl_module.sample(self.n)  # (n, C, H, W) images or (n, D) toy points
        toy = x.dim() == 2
        real = trainer.datamodule.real(max(self.n, 1000)) if toy else None
        critic = critic_of(pl_module) if toy else None
        self.publish(trainer, "samples", it, self.dirpath / f"iter_{it:07d}.png",
                     lambda path: save_samples(x, path, real, critic))  # (H, W, 3) uint8
