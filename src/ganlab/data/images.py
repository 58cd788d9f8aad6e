"""Image sets small enough to hold on the training device: loaded once, resized once, in [-1, 1].

Subclasses only say how to read their files (`load`). An epoch is one pass over a permutation drawn from
(seed, epoch) - the same on every rank, each rank taking its own shard - so batch k is a function of k.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, DeviceDataModule, batches_per_epoch, epoch_shard


class TensorImages(DeviceDataModule):
    def __init__(self, size: int, channels: int, batch_size: int = 64, seed: int = 0):
        super().__init__(batch_size, seed)
        self.size = int(size)
        self.shape = (channels, self.size, self.size)
        self.x = self.y = None
        self._perm = (None, None)  # ((epoch, rank, world), shard) cache: one randperm per epoch, not per batch

    def load(self) -> tuple[Tensor, Tensor]:
        """(images uint8 (N, C, H, W), labels int (N,)) from disk."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.x is None:
            images, labels = self.load()
            x = images.float().div(127.5).sub(1.0)  # (N, C, H, W) in [-1, 1]
            if x.shape[-1] != self.size or x.shape[-2] != self.size:
                x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
            self.x, self.y = x.clamp(-1, 1).contiguous(), labels.long()  # (N, C, S, S), (N,)

    def _to(self, device: torch.device) -> None:
        if self.x.device != device:
            self.x, self.y = self.x.to(device), self.y.to(device)

    def indices(self, k: int, generator: torch.Generator, rank: int, world: int) -> Tensor:
        """Indices (B,) of batch k on this rank."""
        epoch, i = divmod(k, batches_per_epoch(len(self.x), self.batch_size, world))
        if self._perm[0] != (epoch, rank, world):
            self._perm = ((epoch, rank, world), epoch_shard(len(self.x), self.seed, epoch, rank, world, generator))
        return self._perm[1][i * self.batch_size:(i + 1) * self.batch_size]

    def batch(self, k, generator, rank, world) -> Batch:
        self._to(generator.device)
        idx = self.indices(k, generator, rank, world)
        return self.x[idx], self.y[idx]

    def real(self, n, device="cpu"):
        self.setup()
        return self.x[:n].to(device)
