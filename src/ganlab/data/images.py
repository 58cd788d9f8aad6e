"""Image sets small enough to hold on the training device: loaded once, resized once, in [-1, 1].

Subclasses only say how to read their files (`load`). An epoch is one pass over a permutation drawn from
(seed, epoch) - the same on every rank, each rank taking its block of every global batch (base.py) - so batch k
is a function of k.

Labelled subset (data.labelled = N, for semi-supervised training; null keeps every label): the labels of N
images per class are kept, the others dropped. Which images is a function of the seed alone (the same on every
rank and in every run with that seed): per class, the first N of that class in a permutation of the set drawn
from the seed, as Salimans et al. (2016) select theirs, so a larger N keeps a superset of a smaller one's.
Every image is still in the batches (the unlabelled ones are what a semi-supervised model learns from), but
their labels read y = -1 there: a batch is (x (B, C, S, S), y (B,)) with y in {-1, 0, ..., K-1}.
`labelled_subset()` gives the labelled images themselves, `test_split()` the held-out split for accuracy.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..resize import resize
from .base import Batch, DeviceDataModule, batches_per_epoch, epoch_shard

UNLABELLED = -1  # the label batches carry for an image whose label data.labelled dropped
_SUBSET_STREAM = 104_729  # offsets the subset's permutation from the epochs' permutations of the same seed


def labelled_indices(y: Tensor, per_class: int, num_classes: int, seed: int) -> Tensor:
    """Indices (K * N,) into labels y (M,) of the images whose labels are kept, N = per_class: per class, the
    first N of its images in a permutation of the M images drawn from `seed`; grouped by class."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + _SUBSET_STREAM)
    perm = torch.randperm(len(y), generator=g)  # (M,)
    ordered = y.cpu()[perm]  # (M,) labels in permutation order
    kept = []
    for c in range(num_classes):
        mine = perm[ordered == c]  # (M_c,) this class's images, in permutation order
        if len(mine) < per_class:
            raise ValueError(f"data.labelled={per_class} labelled images per class is more than class {c} has "
                             f"({len(mine)} images): lower data.labelled to at most the smallest class's count")
        kept.append(mine[:per_class])
    return torch.cat(kept)


class TensorImages(DeviceDataModule):
    def __init__(self, size: int, channels: int, batch_size: int = 64, seed: int = 0, labelled: int | None = None):
        super().__init__(batch_size, seed)
        if labelled is not None and (isinstance(labelled, bool) or not isinstance(labelled, int) or labelled < 1):
            raise ValueError(f"data.labelled must be a whole number >= 1 (labelled images kept per class) or null "
                             f"(every label kept), got {labelled!r}")
        self.size, self.labelled = int(size), labelled
        self.shape = (channels, self.size, self.size)
        self.x = self.y = None  # (N, C, S, S) in [-1, 1], (N,) every label
        self.kept = None  # (K * labelled,) indices of the images whose labels are kept; None: all are
        self.y_seen = None  # (N,) the labels batches carry: y, with UNLABELLED where data.labelled dropped it
        self._test = None  # (x, y) of the test split, once asked for
        self._perm = (None, None)  # ((epoch, rank, world), shard) cache: one randperm per epoch, not per batch

    def load(self, split: str | None = None) -> tuple[Tensor, Tensor]:
        """(images uint8 (N, C, H, W), labels int (N,)) of `split` from disk; None: this set's own split."""
        raise NotImplementedError

    def _prepare(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 (N, C, H, W), labels (N,) -> (N, C, S, S) in [-1, 1], long labels (N,)."""
        x = images.float().div(127.5).sub(1.0)  # (N, C, H, W) in [-1, 1]
        return resize(x, self.size).clamp(-1, 1).contiguous(), labels.long()  # (N, C, S, S)

    def setup(self, stage: str | None = None) -> None:
        if self.x is None:
            x, y = self._prepare(*self.load())  # (N, C, S, S), (N,)
            self.y_seen = y
            if self.labelled is not None:
                if not self.num_classes:
                    raise ValueError(f"data.labelled: {type(self).__name__} has no class labels to keep")
                self.kept = labelled_indices(y, self.labelled, self.num_classes, self.seed)
                self.y_seen = torch.full_like(y, UNLABELLED)
                self.y_seen[self.kept] = y[self.kept]
            self.x, self.y = x, y

    def _to(self, device: torch.device) -> None:
        if self.x.device != device:
            self.x, self.y = self.x.to(device), self.y.to(device)
            self.y_seen = self.y if self.kept is None else self.y_seen.to(device)

    def indices(self, k: int, generator: torch.Generator, rank: int, world: int) -> Tensor:
        """Indices (B,) of batch k on this rank."""
        epoch, i = divmod(k, batches_per_epoch(len(self.x), self.batch_size, world))
        if self._perm[0] != (epoch, rank, world):
            self._perm = ((epoch, rank, world), epoch_shard(len(self.x), self.seed, epoch, rank, world, generator,
                                                             self.batch_size))
        return self._perm[1][i * self.batch_size:(i + 1) * self.batch_size]

    def batch(self, k, generator, rank, world) -> Batch:
        self._to(generator.device)
        idx = self.indices(k, generator, rank, world)
        return self.x[idx], self.y_seen[idx]  # (B, C, S, S), (B,) with -1 for dropped labels

    def real(self, n, device="cpu"):
        self.setup()
        return self.x[:n].to(device)

    def real_count(self) -> int:
        self.setup()
        return len(self.x)

    def labelled_subset(self) -> tuple[Tensor, Tensor]:
        """(x_l (K * N, C, S, S), y_l (K * N,)): the images whose labels data.labelled keeps, grouped by class,
        on the device the images are on; every image when data.labelled is null."""
        self.setup()
        if self.kept is None:
            return self.x, self.y
        kept = self.kept.to(self.x.device)
        return self.x[kept], self.y[kept]

    def test_split(self) -> tuple[Tensor, Tensor]:
        """(x (M, C, S, S) in [-1, 1] at the training images' size, y (M,) every label) of the held-out split
        (the class's TEST_SPLIT), read once, on the device the training images are on."""
        split = getattr(self, "TEST_SPLIT", None)
        if split is None:
            raise ValueError(f"{type(self).__name__} has no test split")
        if self._test is None:
            self._test = self._prepare(*self.load(split))
        device = self.x.device if self.x is not None else torch.device("cpu")
        self._test = tuple(t.to(device) for t in self._test)
        return self._test
