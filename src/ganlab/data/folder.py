"""Any folder tree of images (png, jpg, jpeg, bmp, webp, tif), searched recursively.

Labels: when the folder holds no images itself and at least two of its immediate subfolders hold images,
those subfolders are the classes (labels by sorted name, as torchvision's ImageFolder); otherwise the set
is unlabelled. Each image: shorter side resized to `size`, then the centre size x size square.
"""
from __future__ import annotations

from pathlib import Path

from torchvision.transforms import v2

from .stream import StreamingImages

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def images_under(folder: Path) -> list[Path]:
    """Image files under folder, recursively, in sorted order; hidden files and folders skipped."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


class ImageFolder(StreamingImages):
    split = "all"  # a folder has no splits

    def __init__(self, path: str, size: int = 64, channels: int = 3, batch_size: int = 64, num_workers: int = 4,
                 seed: int = 0, bad_images: str = "skip"):
        super().__init__(path, size, channels, batch_size, num_workers, seed, bad_images)
        self.setup()  # fail at construction, before any training, on a missing or empty folder or bad files
        self.num_classes = None if self.labels is None else max(self.labels) + 1

    def list_files(self):
        if not self.root.is_dir():
            raise FileNotFoundError(f"no folder {self.root}: set data.path=DIR to a folder of images "
                                    f"(or of class subfolders of images)")
        top = sorted(p for p in self.root.iterdir() if not p.name.startswith("."))
        loose = [p for p in top if p.is_file() and p.suffix.lower() in EXTENSIONS]  # images in the folder itself
        classes = {d.name: images_under(d) for d in top if d.is_dir()}
        classes = {name: files for name, files in classes.items() if files}
        if len(classes) >= 2 and not loose:
            return ([f for files in classes.values() for f in files],
                    [c for c, files in enumerate(classes.values()) for _ in files])
        files = sorted(loose + [f for files in classes.values() for f in files])
        if not files:
            raise ValueError(f"no image files ({', '.join(sorted(e[1:] for e in EXTENSIONS))}) under {self.root}: "
                             f"set data.path=DIR to a folder of images")
        return files, None

    def geometry(self):
        return [v2.Resize(self.size), v2.CenterCrop(self.size)]
