"""Two classes of an idx image set (MNIST, Fashion-MNIST) as the two domains of unpaired translation, held on
the training device: e.g. Fashion-MNIST's sneakers (class 7) as A and ankle boots (class 9) as B. A
two-domain datamodule as unpaired.py describes it; it needs no download and no folder of images, so CycleGAN
trains and is tested offline, and the domain classifier of the whole set (train_classifier.py, found through
`root`) tells whether a translated sneaker reads as a boot.

The idx files are read by data/idx.py; held-out images come from the other split (t10k for a train run). Each
domain is its own on-device image set with its own epochs (seed 2 * seed for A, 2 * seed + 1 for B).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .base import DeviceDataModule, batches_per_epoch, source_id
from .idx import IdxImages
from .images import TensorImages


class OneClass(TensorImages):
    """The images of one class (N, C, 28, 28) uint8, as an on-device image set of its own."""

    def __init__(self, images: Tensor, size: int, batch_size: int, seed: int):
        super().__init__(size, images.shape[1], batch_size, seed)
        self.images = images

    def load(self) -> tuple[Tensor, Tensor]:
        return self.images, torch.zeros(len(self.images), dtype=torch.long)


class ClassPair(DeviceDataModule):
    num_classes = None  # the batch holds no labels: the class is the domain

    def __init__(self, root: str, a: int = 7, b: int = 9, batch_size: int = 64, size: int = 32, split: str = "train",
                 held_out: str = "t10k", hint: str = "", source: str | None = None, download: bool = False,
                 seed: int = 0):
        super().__init__(batch_size, seed)
        classes = IdxImages.num_classes
        if not (0 <= a < classes and 0 <= b < classes) or a == b:
            raise ValueError(f"data.a and data.b must be two different classes in [0, {classes}), got {a} and {b}")
        if held_out not in ("train", "t10k"):
            raise ValueError(f"held_out must be 'train' or 't10k' (the images of grids and metrics), got {held_out!r}")
        # IdxImages checks the split name and that the files exist (or download=true fetches them)
        self.sets = {s: IdxImages(root, batch_size, size, s, hint, source, download, seed) for s in {split, held_out}}
        self.root, self.size, self.split, self.held_out_split = Path(root).expanduser(), int(size), split, held_out
        self.shape = (1, self.size, self.size)
        self.classes = {"a": int(a), "b": int(b)}
        self.train: dict[str, OneClass] | None = None  # domain -> its training images, from setup()
        self.held: dict[str, OneClass] | None = None  # domain -> its held-out images

    def prepare_data(self) -> None:
        for s in self.sets.values():
            s.prepare_data()

    def _domains(self, split: str) -> dict[str, OneClass]:
        images, labels = self.sets[split].load()  # (N, 1, 28, 28) uint8, (N,)
        out = {}
        for i, (domain, c) in enumerate(self.classes.items()):
            mine = images[labels == c]
            if len(mine) == 0:
                raise ValueError(f"class {c} (data.{domain}) has no images in the {split} split of {self.root}")
            out[domain] = OneClass(mine, self.size, self.batch_size, 2 * self.seed + i)
            out[domain].setup()  # -> x (N_c, 1, S, S) in [-1, 1]
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.train is None:
            self.train = self._domains(self.split)
            self.held = self.train if self.held_out_split == self.split else self._domains(self.held_out_split)
            for images in self.train.values():  # a batch larger than a class fails now, not at batch 0
                batches_per_epoch(len(images.x), self.batch_size, 1)

    def batch(self, k, generator, rank, world):
        a, _ = self.train["a"].batch(k, generator, rank, world)  # (B, 1, S, S)
        b, _ = self.train["b"].batch(k, generator, rank, world)  # (B, 1, S, S)
        return a, b

    def held_out(self, domain: str, n: int, device: torch.device | str = "cpu") -> Tensor:
        self.setup()
        return self.held[domain].x[:n].to(device)  # (min(n, N), 1, S, S): the split's first images of the class

    def real(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        self.setup()
        return self.train["b"].x[:n].to(device)  # (min(n, N), 1, S, S)

    def real_count(self) -> int:
        self.setup()
        return len(self.train["b"].x)

    def stats_key(self, n: int) -> str:
        return f"classpair-{source_id(self.root)}-{self.split}-class{self.classes['b']}-1x{self.size}px-n{n}"
