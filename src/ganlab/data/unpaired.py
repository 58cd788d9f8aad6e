"""Unpaired two-domain image data, as CycleGAN trains on: folders of domain A and domain B images, no pairs.

What a two-domain datamodule gives (model=cyclegan reads it; class_pair.py is another):

    batch k                  (a (B, C, S, S), b (B, C, S, S)) in [-1, 1], in place of the usual (x, y); a function
                             of (seed, k, rank) like every batch (base.py), so a resumed run continues exactly
    held_out(d, n, device)   min(n, N) fixed held-out images (n, C, S, S) of domain d ("a" or "b"), the same every
                             call (a prefix of a larger call's): translation grids, val/cycle, the translated samples
    real(n, device)          n fixed real training images of domain B: what the metrics compare G_ab(A) with
    stats_key(n)             names the images of real(n) in the metrics' caches

Each domain is its own stream of epochs - a permutation of its images per epoch, drawn from its own seed
(2 * seed for A, 2 * seed + 1 for B) - so the two sets may differ in size and the pairing of A and B images
changes from epoch to epoch, as the official code's random B index does.

UnpairedFolders reads CycleGAN's data sets as distributed (horse2zebra, apple2orange, ...): root/trainA and
root/trainB, or simply root/A and root/B; held-out images from root/testA and root/testB. Images are streamed
from disk by DataLoader workers and brought to size x size as an image folder's are (folder.py: shorter side
resized, centre crop; no random crops or flips, so that batch k stays a function of k).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .base import Batch, DeviceDataModule
from .folder import ImageFolder, images_under
from .stream import BatchIndices, ImageFiles, _Stream

LAYOUTS = (("trainA", "trainB"), ("A", "B"))  # training folders, CycleGAN's layout first
HELD_OUT = ("auto", "test", "train")


class PairIndices:
    """Batches start, start+1, ... of (A index, B index) pairs of one rank: each domain's own batch sampler
    (stream.py), zipped. Endless: the loop's `iterations` ends the run."""

    def __init__(self, n_a: int, n_b: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.a = BatchIndices(n_a, batch_size, 2 * seed, start, rank, world)
        self.b = BatchIndices(n_b, batch_size, 2 * seed + 1, start, rank, world)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for ia, ib in zip(self.a, self.b):
            yield list(zip(ia, ib))


class PairFiles(Dataset):
    """Item (i, j): (image i of A, image j of B), each (C, S, S) in [-1, 1]."""

    def __init__(self, a: ImageFiles, b: ImageFiles):
        self.a, self.b = a, b

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, ij: tuple[int, int]) -> tuple[Tensor, Tensor]:
        i, j = ij
        return self.a[i][0], self.b[j][0]


def collate_pairs(samples: list[tuple[Tensor, Tensor]]) -> Batch:
    a, b = zip(*samples)
    return torch.stack(a), torch.stack(b)  # (B, C, S, S), (B, C, S, S)


class UnpairedFolders(DeviceDataModule):
    num_classes = None  # the batch holds no labels

    def __init__(self, root: str, size: int = 256, channels: int = 3, batch_size: int = 1, num_workers: int = 4,
                 held_out: str = "auto", seed: int = 0, bad_images: str = "skip"):
        super().__init__(batch_size, seed)
        if held_out not in HELD_OUT:
            raise ValueError(f"held_out must be one of {', '.join(HELD_OUT)}, got {held_out!r}")
        self.root, self.size, self.num_workers = Path(root).expanduser(), int(size), int(num_workers)
        self.shape = (channels, self.size, self.size)
        train = next(((self.root / a, self.root / b) for a, b in LAYOUTS
                      if (self.root / a).is_dir() and (self.root / b).is_dir()), None)
        if train is None:
            raise FileNotFoundError(f"no domain folders trainA/ and trainB/ (or A/ and B/) in {self.root}: set "
                                    f"data.root=DIR to an unpaired data set such as CycleGAN's horse2zebra")
        test = (self.root / "testA", self.root / "testB")
        has_test = all(p.is_dir() for p in test)
        if held_out == "test" and not has_test:
            raise FileNotFoundError(f"data.held_out=test, but {self.root} has no testA/ and testB/: set "
                                    f"data.held_out=train (or auto) to show and score training images")
        self.held_out_split = "test" if has_test and held_out != "train" else "train"
        self.folders = {"a": train[0], "b": train[1]}
        # each domain read as an image folder (decoded once now: a bad file fails or is skipped before training);
        # domain A's seed 2 * seed, B's 2 * seed + 1, as their batches (PairIndices)
        self.train_sets = {d: self._folder(p, 2 * self.seed + i, bad_images) for i, (d, p) in
                           enumerate(self.folders.items())}
        self.held_out_sets = self.train_sets
        if self.held_out_split == "test":
            self.held_out_sets = {d: self._folder(p, 2 * self.seed + i, bad_images) for i, (d, p) in
                                  enumerate(zip("ab", test))}
        sets = [*self.train_sets.values()] + ([*self.held_out_sets.values()] if self.held_out_split == "test" else [])
        self.skipped_files = sum(s.skipped_files for s in sets)  # files left out by bad_images=skip

    def _folder(self, path: Path, seed: int, bad_images: str) -> ImageFolder:
        if not images_under(path):
            raise ValueError(f"no image files under {path}: data.root={self.root} needs images in each domain folder")
        return ImageFolder(str(path), self.size, self.shape[0], self.batch_size, self.num_workers, seed, bad_images)

    def setup(self, stage: str | None = None) -> None:
        if stage == "fit" and self.trainer is not None and self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                logger.log_hyperparams({"data/skipped_files": self.skipped_files})

    def loader(self, start: int = 0, rank: int = 0, world: int = 1, pin_memory: bool = False) -> DataLoader:
        """Batches start, start+1, ... of this rank, decoded by `num_workers` worker processes."""
        a, b = self.train_sets["a"], self.train_sets["b"]
        sampler = PairIndices(len(a.files), len(b.files), self.batch_size, self.seed, start, rank, world)
        return DataLoader(PairFiles(a.dataset(), b.dataset()), batch_sampler=sampler, collate_fn=collate_pairs,
                          num_workers=self.num_workers, pin_memory=pin_memory,
                          generator=torch.Generator().manual_seed(self.seed))  # not the global RNG (stream.py)

    def train_dataloader(self) -> _Stream:
        t = self.trainer
        return _Stream(self.loader(self.consumed, t.global_rank, t.world_size,
                                   pin_memory=t.strategy.root_device.type == "cuda"))

    def held_out(self, domain: str, n: int, device: torch.device | str = "cpu") -> Tensor:
        return self.held_out_sets[domain].real(n, device)  # (min(n, N), C, S, S): a fixed seeded subset

    def real(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        return self.train_sets["b"].real(n, device)  # (min(n, N), C, S, S)

    def real_count(self) -> int:
        return self.train_sets["b"].real_count()

    def stats_key(self, n: int) -> str:
        return self.train_sets["b"].stats_key(n)  # real(n) is that folder's (its seed: 2 * seed + 1)
