"""Image sets too large for the device: files decoded by DataLoader workers, batch k still a function of k.

Batch k of a rank is a slice of a permutation drawn from (seed, epoch) - the same on every rank, each rank
taking its own shard - as in images.py. The batch sampler (`BatchIndices`) yields the indices of batches
start, start+1, ...; workers decode them, and the DataLoader hands batches back in sampler order whatever
the number of workers. Decoding is deterministic (crop and resize, no random augmentation), so the stream
is the same with 0 or 8 workers, and a resumed run, whose sampler starts at `consumed` (base.py), continues
exactly. Workers read ahead; `consumed` counts only what reached training_step.

Subclasses say which files (`list_files`) and how to bring one image to size x size (`geometry`).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .base import Batch, DeviceDataModule, batches_per_epoch, epoch_shard, source_id


class ImageFiles(Dataset):
    """Image files decoded with PIL as `mode` ("RGB" or "L") and transformed: (x (C, S, S) in [-1, 1], label)."""

    def __init__(self, files: list[Path], labels: list[int] | None, mode: str, transform: v2.Transform):
        self.files, self.labels, self.mode, self.transform = files, labels, mode, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int | None]:
        with Image.open(self.files[i]) as im:
            x = self.transform(im.convert(self.mode))  # (C, S, S)
        return x, None if self.labels is None else self.labels[i]


def collate(samples: list[tuple[Tensor, int | None]]) -> Batch:
    """(x (B, C, S, S), y (B,) long) or (x, None) for unlabelled sets (default_collate cannot collate None)."""
    xs, ys = zip(*samples)
    return torch.stack(xs), None if ys[0] is None else torch.tensor(ys, dtype=torch.long)


class BatchIndices:
    """Indices of batches start, start+1, ... of one rank. Endless: the loop's `iterations` ends the run."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.per_epoch = batches_per_epoch(n, batch_size, world)
        self.n, self.batch_size, self.seed, self.start, self.rank, self.world = n, batch_size, seed, start, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        k, shard, g = self.start, (None, None), torch.Generator()  # shard: (epoch, this rank's part of it)
        while True:
            epoch, i = divmod(k, self.per_epoch)
            if shard[0] != epoch:
                shard = (epoch, epoch_shard(self.n, self.seed, epoch, self.rank, self.world, g))
            yield shard[1][i * self.batch_size:(i + 1) * self.batch_size].tolist()
            k += 1


class _Stream:
    """The training DataLoader, hidden from Lightning: under DDP it would inject a DistributedSampler into any
    DataLoader (and fail on a custom batch sampler); the sharding here is ours."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __iter__(self) -> Iterator[Batch]:
        yield from self.loader  # a generator: Lightning's iter() check starts no workers


class StreamingImages(DeviceDataModule):
    split: str  # which part of the set, named in stats_key

    def __init__(self, root: str, size: int, channels: int, batch_size: int = 64, num_workers: int = 4,
                 seed: int = 0):
        super().__init__(batch_size, seed)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0 (0: decode in the main process), got {num_workers}")
        self.root, self.size, self.num_workers = Path(root).expanduser(), int(size), int(num_workers)
        self.shape = (channels, self.size, self.size)
        self.files: list[Path] | None = None  # listed by setup()
        self.labels: list[int] | None = None  # class of each file, None for unlabelled sets

    def list_files(self) -> tuple[list[Path], list[int] | None]:
        """(image files, their labels or None), in a fixed order; a clear error when there are none."""
        raise NotImplementedError

    def geometry(self) -> list[v2.Transform]:
        """Crop and resize of one decoded image (C, H, W) to (C, size, size)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.files is None:
            self.files, self.labels = self.list_files()

    def dataset(self) -> ImageFiles:
        self.setup()
        c = self.shape[0]
        transform = v2.Compose([v2.ToImage(), *self.geometry(),  # uint8 (C, S, S): resizing keeps [0, 255]
                                v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * c, [0.5] * c),
                                v2.ToPureTensor()])
        return ImageFiles(self.files, self.labels, "RGB" if c == 3 else "L", transform)

    def _generator(self) -> torch.Generator:
        """Seeds the DataLoader's workers. Without it every new DataLoader iterator draws from torch's global
        RNG, which the latents come from: a resumed run (its iterator starts after the RNG state is restored)
        or a metrics evaluation (real()) would shift the latents of training."""
        return torch.Generator().manual_seed(self.seed)

    def loader(self, start: int = 0, rank: int = 0, world: int = 1, pin_memory: bool = False) -> DataLoader:
        """Batches start, start+1, ... of this rank, decoded by `num_workers` worker processes."""
        self.setup()
        sampler = BatchIndices(len(self.files), self.batch_size, self.seed, start, rank, world)
        return DataLoader(self.dataset(), batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers,
                          pin_memory=pin_memory, generator=self._generator())

    def train_dataloader(self) -> _Stream:
        t = self.trainer
        return _Stream(self.loader(self.consumed, t.global_rank, t.world_size,
                                   pin_memory=t.strategy.root_device.type == "cuda"))

    def real(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """min(n, N) images (n, C, S, S) of a fixed seeded subset, decoded by the workers."""
        self.setup()
        g = torch.Generator().manual_seed(self.seed + 12345)
        subset = torch.randperm(len(self.files), generator=g)[:n].tolist()
        loader = DataLoader(self.dataset(), batch_size=256, sampler=subset, collate_fn=collate,
                            num_workers=self.num_workers, pin_memory=torch.device(device).type == "cuda",
                            generator=self._generator())
        return torch.cat([x.to(device) for x, _ in loader])

    def stats_key(self) -> str:
        return f"{type(self).__name__.lower()}-{source_id(self.root)}-{self.split}-{self.shape[0]}x{self.size}px"
