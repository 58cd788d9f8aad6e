"""Image sets from disk for `evaluate.py real=A fake=B`, in the convention pytorch-fid, clean-fid and
torch-fidelity share: a set is a folder of image files (searched recursively) or a .npy array.

Every set comes back as uint8 (N, C, H, W) with C = 1 (grey) or 3 (RGB): the feature networks tile grey to RGB.
Bad input is one ValueError naming the set and the fix: an array that is not uint8 (or integers in [0, 255]),
of the wrong shape, an empty folder, unreadable files, images of different sizes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_image_set(path: str | Path, key: str = "real") -> Tensor:
    """The images at `path` (a folder or a .npy file) -> uint8 (N, C, H, W); `key` names the option in errors."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _folder(path, key)
    if path.suffix == ".npy" and path.is_file():
        return _array(np.load(path, allow_pickle=False), path, key)
    raise ValueError(f"{key}: {path} is neither a folder of images nor a .npy file")


def _array(a: np.ndarray, path: Path, key: str) -> Tensor:
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.integer):
            lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
            raise ValueError(f"{key}: {path} holds {a.dtype} values in [{lo:.3g}, {hi:.3g}]; FID reads uint8 images "
                             f"in [0, 255]: save np.round(x * 255).astype(np.uint8) for values in [0, 1], "
                             f"np.round((x + 1) * 127.5).astype(np.uint8) for values in [-1, 1]")
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f"{key}: {path} holds {a.dtype} values in [{a.min()}, {a.max()}], outside [0, 255]: "
                             f"save uint8 images")
        a = a.astype(np.uint8)
    shape = a.shape
    if a.ndim == 3:
        a = a[:, None]  # (N, H, W) grey -> (N, 1, H, W)
    if a.ndim != 4 or a.shape[1] not in (1, 3) or len(a) == 0:
        raise ValueError(f"{key}: {path} has shape {shape}; expected uint8 (N, H, W) or (N, C, H, W) with C = 1 or "
                         f"3 and N >= 1 (channels-last arrays: np.moveaxis(x, -1, 1))")
    return torch.from_numpy(np.ascontiguousarray(a))


def _folder(path: Path, key: str) -> Tensor:
    from PIL import Image

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{key}: {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                grey = im.mode in ("1", "L", "I;16", "I;16B", "I", "F") and "transparency" not in im.info
                if im.mode in ("I;16", "I;16B", "I"):  # 16-bit grey: to 8 bits by value, not by clipping
                    im = Image.fromarray((np.asarray(im, np.float64) / 257).round().clip(0, 255).astype(np.uint8))
                images.append(np.asarray(im.convert("L" if grey else "RGB")))
        except OSError as e:
            raise ValueError(f"{key}: cannot read {f}: {e}") from None
    if any(im.ndim == 3 for im in images):  # grey and colour files in one set: all as RGB
        images = [np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im for im in images]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        first = images[0].shape
        odd = next(f for f, im in zip(files, images) if im.shape != first)
        raise ValueError(f"{key}: the images of {path} differ in size ({files[0].name}: {first}, "
                         f"{odd.name}: {images[files.index(odd)].shape}); resize them to one size first")
    a = np.stack(images)  # (N, H, W) grey or (N, H, W, 3)
    return torch.from_numpy(a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2).copy())
