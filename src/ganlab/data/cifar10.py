"""CIFAR-10 (Krizhevsky 2009) from its "python version" batches: cifar-10-batches-py/{data_batch_1..5, test_batch}.

Each batch is a (Python 2) pickled dict with "data" (N, 3072) uint8 (the R, G and B planes of a 32x32 image,
row-major) and "labels"; latin1 decoding reads Python 2 strings and numpy arrays. Pickle can run code, so the files are read with an unpickler that builds only the plain
containers and numpy arrays this format holds.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .download import fetch_if_missing
from .images import TensorImages

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR-10 format")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one CIFAR-10 python batch file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="latin1").load()
        data, labels = d["data"], d["labels"]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({e})") from None
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (data {data.shape}, {len(labels)} labels)")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


class Cifar10(TensorImages):
    """The 50k training (or 10k test) images, 32x32 RGB, resized once to `size`. root holds
    cifar-10-batches-py/, where torchvision.datasets.CIFAR10 writes it: data.download=true fetches it."""

    TEST_SPLIT = "test"
    num_classes = 10

    def __init__(self, root: str, batch_size: int = 64, size: int = 32, split: str = "train",
                 download: bool = False, seed: int = 0, labelled: int | None = None):
        super().__init__(size, 3, batch_size, seed, labelled)
        self.native = 32 if self.size > 32 else None  # the batches hold 32x32 images
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.root, self.split, self.download = Path(root).expanduser(), split, bool(download)
        self.files = self.split_files(split)
        if not download:
            self.check()  # fail at construction, before any training, when the files are missing
            if labelled is not None:
                self.setup()  # and when data.labelled is more than a class has

    def split_files(self, split: str) -> list[Path]:
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        return [self.root / "cifar-10-batches-py" / n for n in names]

    def check(self, files: list[Path] | None = None) -> None:
        missing = [str(f) for f in files or self.files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"missing data file {missing[0]}. Unpack cifar-10-python.tar.gz (the 'CIFAR-10 "
                                    f"python version' of the dataset's home page) so that data.root holds "
                                    f"cifar-10-batches-py/, point data.root=DIR at it, or set data.download=true")

    def prepare_data(self) -> None:
        """Fetch the files when asked (data.download=true) and missing: Lightning calls this on one process
        per node before setup; load() calls it too, for use outside a Trainer."""
        if self.download:
            fetch_if_missing(self.check, "CIFAR10", self.root)

    def load(self, split=None):
        self.prepare_data()
        files = self.files if split in (None, self.split) else self.split_files(split)
        self.check(files)
        parts = [read_cifar_batch(f) for f in files]
        return (torch.from_numpy(np.concatenate([p[0] for p in parts])),
                torch.from_numpy(np.concatenate([p[1] for p in parts])))
