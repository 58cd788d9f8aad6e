"""Image sets too large for the device: files decoded by DataLoader workers, batch k still a function of k.

Batch k of a rank is a slice of a permutation drawn from (seed, epoch) - the same on every rank, each rank
taking its own shard - as in images.py. The batch sampler (`BatchIndices`) yields the indices of batches
start, start+1, ...; workers decode them, and the DataLoader hands batches back in sampler order whatever
the number of workers. Decoding is deterministic (crop and resize, no random augmentation), so the stream
is the same with 0 or 8 workers, and a resumed run, whose sampler starts at `consumed` (base.py), continues
exactly. Workers read ahead; `consumed` counts only what reached training_step.

Subclasses say which files (`list_files`) and how to bring one image to size x size (`geometry`).

Every file is decoded once at setup (`check_image`), before training: a file that does not decode (truncated,
corrupt, not an image) would otherwise stop the run when a worker first meets it, hours in. `bad_images`
says what happens to such files and to images smaller than `size` on their shorter side (upscaling would
make blurry training data): `skip` drops them with one warning and counts them (`skipped_files`, logged as
the hyperparameter data/skipped_files); `fail` stops at setup naming the first. The check is a full decode,
not PIL's `verify()`, which reads only a JPEG's header and passes a truncated one: about 0.25 ms per small
JPEG or PNG on one core (1,000 files: 0.25 s; CelebA's 162,770: ~40 s, spread over `num_workers` threads).
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .base import Batch, DeviceDataModule, batches_per_epoch, epoch_shard

BAD_IMAGES = ("skip", "fail")


def check_image(path: Path) -> tuple[int, str | None]:
    """(shorter side in px, None) for an image file that decodes, (0, what went wrong) for one that does not."""
    try:
        with Image.open(path) as im:
            side = min(im.size)
            im.draft(im.mode, (1, 1))  # JPEG: decode at 1/8 scale, ~25% faster; still reads every byte
            im.load()
        return side, None
    except Image.UnidentifiedImageError:  # its message repeats the path
        return 0, "not an image file PIL can read"
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        return 0, f"{type(e).__name__}: {e}"


def to_mode(im: Image.Image, mode: str) -> Image.Image:
    """im as `mode` ("RGB" or "L"). PIL converts CMYK, palette, RGBA (alpha dropped) and grey itself, but clips
    16-bit greyscale (modes I;16*, I) at 255 instead of scaling it - a 16-bit PNG would come out white - so
    those are scaled to 8 bits first."""
    if im.mode.startswith("I"):
        im = Image.fromarray((np.asarray(im).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))  # (H, W)
    return im.convert(mode)


class ImageFiles(Dataset):
    """Image files decoded with PIL as `mode` ("RGB" or "L") and transformed: (x (C, S, S) in [-1, 1], label)."""

    def __init__(self, files: list[Path], labels: list[int] | None, mode: str, transform: v2.Transform):
        self.files, self.labels, self.mode, self.transform = files, labels, mode, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int | None]:
        with Image.open(self.files[i]) as im:
            x = self.transform(to_mode(im, self.mode))  # (C, S, S)
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
                shard = (epoch, epoch_shard(self.n, self.seed, epoch, self.rank, self.world, g, self.batch_size))
            yield shard[1][i * self.batch_size:(i + 1) * self.batch_size].tolist()
            k += 1


TERM_GRACE = 60.0  # seconds a worker outlives a SIGTERM: the training process's stop and checkpoint, with room


def leave_stops_to_the_trainer(worker_id: int) -> None:
    """In each DataLoader worker: Ctrl-C reaches every process of the terminal's process group, and SLURM's
    --signal, preemption and scancel every process of the job step, but only the training process may act on them
    (callbacks/stop.py: it stops at the iteration end, checkpoints, and then ends its workers). A worker that died of
    one failed the run instead (torch's SIGCHLD handler raises in the training process, even mid-checkpoint).
    SIGINT, SIGUSR1 and SIGUSR2 are ignored. SIGTERM is deferred, not ignored: multiprocessing also ends workers
    with it (a worker that does not leave when told, and every daemon left at exit, which it then joins), so a
    worker still alive TERM_GRACE seconds after one exits as if killed by it; one whose parent is gone exits now."""
    for signum in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)
    parent = os.getppid()

    def deferred(signum: int, frame) -> None:
        if os.getppid() != parent:
            os._exit(128 + signum)
        timer = threading.Timer(TERM_GRACE, os._exit, (128 + signum,))
        timer.daemon = True
        timer.start()
        signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the worker at once

    signal.signal(signal.SIGTERM, deferred)


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
                 seed: int = 0, bad_images: str = "skip"):
        super().__init__(batch_size, seed)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0 (0: decode in the main process), got {num_workers}")
        if bad_images not in BAD_IMAGES:
            raise ValueError(f"bad_images must be skip or fail, got {bad_images!r}")
        self.root, self.size, self.num_workers = Path(root).expanduser(), int(size), int(num_workers)
        self.bad_images = bad_images
        self.shape = (channels, self.size, self.size)
        self.files: list[Path] | None = None  # listed by setup()
        self.labels: list[int] | None = None  # class of each file, None for unlabelled sets
        self.skipped_files = 0  # files left out by bad_images=skip

    def list_files(self) -> tuple[list[Path], list[int] | None]:
        """(image files, their labels or None), in a fixed order; a clear error when there are none."""
        raise NotImplementedError

    def geometry(self) -> list[v2.Transform]:
        """Crop and resize of one decoded image (C, H, W) to (C, size, size)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.files is None:
            self.files, self.labels = self.usable(*self.list_files())
        if stage == "fit" and self.trainer is not None and self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                logger.log_hyperparams({"data/skipped_files": self.skipped_files})

    def usable(self, files: list[Path], labels: list[int] | None) -> tuple[list[Path], list[int] | None]:
        """The files that decode and are at least `size` px on their shorter side; the others by `bad_images`."""
        # Threads, not forked processes: a fork of a process holding torch's thread pools can deadlock, and
        # PIL releases the GIL while it decodes.
        with ThreadPoolExecutor(max(1, self.num_workers)) as pool:
            checks = list(pool.map(check_image, files, chunksize=64))
        broken = [(f, why) for f, (_, why) in zip(files, checks) if why]
        small = sorted((side, f) for f, (side, why) in zip(files, checks) if not why and side < self.size)
        keep = [i for i, (side, why) in enumerate(checks) if not why and side >= self.size]
        if not broken and not small:
            return files, labels
        problems = []
        if broken:
            names = "".join(f", {f.name}" for f, _ in broken[1:3]) + (", ..." if len(broken) > 3 else "")
            problems.append(f"{len(broken)} cannot be decoded ({broken[0][0]}: {broken[0][1]}{names})")
        if small:
            problems.append(f"{len(small)} smaller than data.size={self.size} px on the shorter side (down to "
                            f"{small[0][0]} px: {small[0][1]}), which upscaling would blur: lower data.size to "
                            f"keep them")
        what = f"of the {len(files)} image files under {self.root}, " + "; ".join(problems)
        if not keep:
            raise ValueError(f"no usable images: {what}")
        if self.bad_images == "fail":
            raise ValueError(f"{what}. Fix or remove them, or set data.bad_images=skip to train without them")
        self.skipped_files = len(files) - len(keep)
        rank_zero_warn(f"data.bad_images=skip: skipped {self.skipped_files} {what}")
        return [files[i] for i in keep], None if labels is None else [labels[i] for i in keep]

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
                          pin_memory=pin_memory, generator=self._generator(), worker_init_fn=leave_stops_to_the_trainer)

    def train_dataloader(self) -> _Stream:
        t = self.trainer
        return _Stream(self.loader(self.consumed, t.global_rank, t.world_size,
                                   pin_memory=t.strategy.root_device.type == "cuda"))

    def stats_key(self, n: int) -> str:
        """real(n) draws its subset (and its order) of the usable files from the seed: both name it."""
        self.setup()
        return f"{super().stats_key(n)}-of{len(self.files)}-seed{self.seed}"

    def real_count(self) -> int:
        self.setup()
        return len(self.files)

    def real(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """min(n, N) images (n, C, S, S) of a fixed seeded subset, decoded by the workers."""
        self.setup()
        g = torch.Generator().manual_seed(self.seed + 12345)
        subset = torch.randperm(len(self.files), generator=g)[:n].tolist()
        loader = DataLoader(self.dataset(), batch_size=256, sampler=subset, collate_fn=collate,
                            num_workers=self.num_workers, pin_memory=torch.device(device).type == "cuda",
                            generator=self._generator(), worker_init_fn=leave_stops_to_the_trainer)
        return torch.cat([x.to(device) for x, _ in loader])
