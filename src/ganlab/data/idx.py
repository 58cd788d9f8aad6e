"""MNIST-format image sets (the idx files of MNIST and Fashion-MNIST).

The idx format (LeCun et al.): big-endian magic (0, 0, dtype code, ndim), ndim big-endian int32 sizes, then
the raw array. Files may be gzipped (`.gz`), as Debian's dataset-fashion-mnist ships them.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from .download import fetch_if_missing
from .images import TensorImages

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4)
    dtype = np.dtype(_DTYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != dtype.itemsize * int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {tuple(dims)}, file holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype).reshape(tuple(dims))


def find_idx(folders: list[Path], stem: str) -> Path:
    """`stem` or `stem.gz` in the first of `folders` holding it, else a FileNotFoundError naming the first."""
    for folder in folders:
        for p in (folder / stem, folder / f"{stem}.gz"):
            if p.exists():
                return p
    raise FileNotFoundError(f"{folders[0] / stem}[.gz]")


class IdxImages(TensorImages):
    """An idx image set (28x28 grey images and their labels), resized once to `size`.

    The files are read from root, or from root/<source>/raw, where torchvision.datasets.<source> (MNIST or
    FashionMNIST) writes them: data.download=true fetches them there when they are missing.
    """

    TEST_SPLIT = "t10k"
    num_classes = 10

    def __init__(self, root: str, batch_size: int = 64, size: int = 32, split: str = "train",
                 hint: str = "", source: str | None = None, download: bool = False, seed: int = 0,
                 labelled: int | None = None):
        super().__init__(size, 1, batch_size, seed, labelled)
        self.native = 28 if self.size > 28 else None  # the idx files hold 28x28 images
        if split not in ("train", "t10k"):
            raise ValueError(f"split must be 'train' or 't10k', got {split!r}")
        if download and source not in ("MNIST", "FashionMNIST"):
            raise ValueError(f"download=true needs source=MNIST or FashionMNIST (the torchvision.datasets class "
                             f"to fetch the files with), got {source!r}")
        self.root, self.split, self.hint = Path(root).expanduser(), split, hint
        self.source, self.download = source, bool(download)
        if not download:
            self.files()  # fail at construction, before any training, when the files are missing
            if labelled is not None:
                self.setup()  # and when data.labelled is more than a class has

    def files(self, split: str | None = None) -> list[Path]:
        """The images and labels files of `split` (None: this set's own split)."""
        split = split or self.split
        folders = [self.root] + ([self.root / self.source / "raw"] if self.source else [])
        try:
            return [find_idx(folders, f"{split}-{kind}-idx{d}-ubyte")
                    for kind, d in (("images", 3), ("labels", 1))]
        except FileNotFoundError as e:
            fix = " Or set data.download=true to fetch them with torchvision." if self.source else ""
            raise FileNotFoundError(f"missing data file {e.args[0]}. {self.hint}{fix}".strip()) from None

    def prepare_data(self) -> None:
        """Fetch the files when asked (data.download=true) and missing: Lightning calls this on one process
        per node before setup; load() calls it too, for use outside a Trainer."""
        if self.download:
            fetch_if_missing(self.files, self.source, self.root)

    def load(self, split=None):
        self.prepare_data()
        images, labels = (torch.from_numpy(read_idx(f).copy()) for f in self.files(split))
        return images[:, None], labels  # (N, 1, 28, 28), (N,)
