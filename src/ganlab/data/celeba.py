"""CelebA (Liu et al. 2015), the aligned and cropped faces: img_align_celeba/NNNNNN.jpg (178x218 RGB) and
list_eval_partition.txt (lines "000001.jpg 0": 0 train, 1 valid, 2 test; 162,770 / 19,867 / 19,962 images).

Read from root, or from root/celeba, where torchvision.datasets.CelebA writes them (data.download=true
fetches them there; torchvision needs the `gdown` package for Google Drive). Preprocessing is the DCGAN /
BEGAN recipe: the centre 178x178 square, resized to `size`. Unlabelled: the 40 attributes are not used.
"""
from __future__ import annotations

from pathlib import Path

from torchvision.transforms import v2

from .download import fetch_if_missing
from .stream import StreamingImages

SPLITS = {"train": 0, "valid": 1, "test": 2}


class CelebA(StreamingImages):
    def __init__(self, root: str = "~/data/celeba", split: str = "train", size: int = 64, batch_size: int = 64,
                 num_workers: int = 4, download: bool = False, seed: int = 0, bad_images: str = "skip"):
        super().__init__(root, size, 3, batch_size, num_workers, seed, bad_images)
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split must be one of train, valid, test, all; got {split!r}")
        self.split, self.download = split, bool(download)
        if not download:
            self.setup()  # fail at construction, before any training, when the files are missing

    def folder(self) -> Path:
        """root or root/celeba, whichever holds img_align_celeba/ and list_eval_partition.txt."""
        for d in (self.root, self.root / "celeba"):
            if (d / "img_align_celeba").is_dir() and (d / "list_eval_partition.txt").is_file():
                return d
        raise FileNotFoundError(f"no CelebA in {self.root}: it needs img_align_celeba/ and list_eval_partition.txt "
                                f"there or in {self.root / 'celeba'}. Unpack img_align_celeba.zip and "
                                f"list_eval_partition.txt (the dataset's home page) into it, point data.root=DIR at "
                                f"them, or set data.download=true")

    def prepare_data(self) -> None:
        """Fetch the files when asked (data.download=true) and missing: Lightning calls this on one process
        per node before setup; list_files() calls it too, for use outside a Trainer."""
        if self.download:
            fetch_if_missing(self.folder, "CelebA", self.root, split="all", target_type=[])

    def list_files(self):
        self.prepare_data()
        folder = self.folder()
        names_parts = (folder / "list_eval_partition.txt").read_text().split()  # name, part, name, part, ...
        return [folder / "img_align_celeba" / name for name, part in zip(names_parts[::2], names_parts[1::2])
                if self.split == "all" or int(part) == SPLITS[self.split]], None

    def geometry(self):
        return [v2.CenterCrop(178), v2.Resize(self.size)]
