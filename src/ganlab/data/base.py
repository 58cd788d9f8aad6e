"""Datamodules whose batches are drawn on the training device.

Batch k of a run is a pure function of (seed, k, rank), so a resumed run sees exactly the batches an
uninterrupted run would. Under DDP, batch k of rank r is block r of a global batch k of world x B samples,
the same global batch for any number of ranks, so N devices with batch B train on what one device with batch
N x B would (ranks.py does the same for the step's random draws): the datamodule counts the batches handed to training (`consumed`, saved in the
checkpoint) and a resumed iterator starts there. Lightning prefetches one batch ahead, so counting what the
iterator yielded would be off by one; counting in `on_after_batch_transfer` (called for the batch about to
be trained on) is not.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

Batch = tuple[Tensor, "Tensor | None"]


def source_id(root: str | Path) -> str:
    """Names the files a data set is read from, for caches (classifiers, real statistics): the folder's name
    and a hash of its absolute path, e.g. `fashion-mnist-1a2b3c4d`."""
    path = Path(root).expanduser().resolve()
    return f"{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def batches_per_epoch(n: int, batch_size: int, world: int) -> int:
    per_epoch = (n // world) // batch_size
    if per_epoch == 0:
        raise ValueError(f"data.batch_size={batch_size} is larger than the {n // world} images per device; lower it")
    return per_epoch


def epoch_shard(n: int, seed: int, epoch: int, rank: int, world: int, generator: torch.Generator,
                batch_size: int) -> Tensor:
    """This rank's batches of one epoch, laid end to end (per_epoch * B,): from the epoch's permutation of n
    items, drawn on the generator's device from (seed, epoch) and the same on every rank, global batch i is
    items [i W B, (i + 1) W B) and this rank's batch i their block `rank` of B."""
    generator.manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=generator, device=generator.device)  # (n,)
    per_epoch = batches_per_epoch(n, batch_size, world)
    return perm[:per_epoch * world * batch_size].view(per_epoch, world, batch_size)[:, rank].reshape(-1)


class DeviceDataModule(L.LightningDataModule):
    shape: tuple[int, ...]  # of one sample
    num_classes: int | None = None  # labelled data: labels y are in [0, num_classes)
    native: int | None = None  # the files' side when the module enlarged square images to data.size (resize.py)

    def __init__(self, batch_size: int, seed: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.consumed = 0  # batches handed to training_step so far

    def batch(self, k: int, generator: torch.Generator, rank: int, world: int) -> Batch:
        """Batch k for this rank; `generator` lives on the training device. Subclasses implement it."""
        raise NotImplementedError

    def real(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """n real samples (B, *shape) for metrics and plots, the same every call."""
        raise NotImplementedError

    def real_count(self) -> int | None:
        """How many different images real(n) can return (None: any number, e.g. drawn combinations or toy
        points), so that metrics.n beyond it is refused before training instead of silently scoring fewer."""
        return None

    def stats_key(self, n: int) -> str:
        """Names the images real(n) returns in caches of their statistics (metrics/fid.py), so that runs share
        a cache file only when their images are the same: everything they depend on - which data, read from
        which folder (`root`), split, channels, size and n. This default is for a set whose real(n) is its first
        n images; a set that draws them from the seed names the seed too. Toy data has no statistics to cache."""
        return (f"{type(self).__name__.lower()}-{source_id(self.root)}-{self.split}-{self.shape[0]}x{self.size}px"
                f"-n{n}")

    def train_dataloader(self) -> Iterator[Batch]:
        t = self.trainer
        return _Batches(self, t.strategy.root_device, self.consumed, t.global_rank, t.world_size)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        self.consumed += 1
        return batch

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])


class _Batches:
    """An endless iterable of batches starting at batch `start` (no __len__: the run length is the loop's)."""

    def __init__(self, dm: DeviceDataModule, device: torch.device, start: int, rank: int, world: int):
        self.dm, self.device, self.start, self.rank, self.world = dm, device, start, rank, world

    def __iter__(self) -> Iterator[Batch]:
        g = torch.Generator(device=self.device)
        k = self.start
        while True:
            yield self.dm.batch(k, g, self.rank, self.world)
            k += 1
