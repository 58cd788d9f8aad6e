"""DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

Followed: mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py (the same file is in its DiffAugment-stylegan2-
pytorch/ and DiffAugment-biggan-cifar/): the policy is a comma-separated list, applied in its order; each name is
one or more transforms, each drawing its own parameters per sample, independently for every call (so real and
fake batches, and every critic step, get independent draws), all differentiable w.r.t. the images:

- color: brightness x + (u - 0.5), then saturation (x - mean_c x) * 2u + mean_c x (mean over channels, per
  pixel), then contrast (x - mean x) * (u + 0.5) + mean x (mean over the whole image); u ~ U[0, 1) per sample.
  On [-1, 1] images, as the authors' code.
- translation: shift by integers (tx, ty), each uniform in [-s, s] with s = int(side * 1/8 + 0.5); the output
  pixel (i, j) is x[i + tx, j + ty], 0 where that falls outside the image (the authors' one-pixel zero padding
  with clamped indices).
- cutout: a square of int(side * 1/2 + 0.5) pixels set to 0, its centre offset o uniform in
  [0, side + (1 - size % 2)), covering [o - size // 2, o - size // 2 + size) cut to the image.

Written anew: the authors' index-put of the cutout mask is a comparison here, which zeroes the same pixels.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ranks import Ranks
from .base import Augment


def brightness(x: Tensor, u: Tensor) -> Tensor:
    """x (B, C, H, W) + (u - 0.5), u (B,) in [0, 1)."""
    return x + (u.view(-1, 1, 1, 1) - 0.5)


def saturation(x: Tensor, u: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (x - mean) * (u.view(-1, 1, 1, 1) * 2) + mean


def contrast(x: Tensor, u: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (u.view(-1, 1, 1, 1) + 0.5) + mean


def translate(x: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """out[b, :, i, j] = x[b, :, i + tx[b], j + ty[b]], zero outside the image; tx, ty (B,) integers."""
    b, _, h, w = x.shape
    rows = (torch.arange(h, device=x.device) + tx.view(-1, 1) + 1).clamp(0, h + 1)  # (B, H) into the padded image
    cols = (torch.arange(w, device=x.device) + ty.view(-1, 1) + 1).clamp(0, w + 1)  # (B, W)
    padded = F.pad(x, [1, 1, 1, 1])  # (B, C, H + 2, W + 2): its border is the zero fill
    batch = torch.arange(b, device=x.device).view(-1, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.unsqueeze(2), cols.unsqueeze(1)].permute(0, 3, 1, 2).contiguous()


def cutout_mask(shape: tuple[int, ...], size: tuple[int, int], ox: Tensor, oy: Tensor, dtype, device) -> Tensor:
    """(B, 1, H, W): 0 on each sample's square [o - size // 2, o - size // 2 + size) (rows from ox, columns from
    oy), 1 elsewhere."""
    _, _, h, w = shape
    r0, c0 = (ox - size[0] // 2).view(-1, 1), (oy - size[1] // 2).view(-1, 1)  # (B, 1)
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    in_rows = (rows >= r0) & (rows < r0 + size[0])  # (B, H)
    in_cols = (cols >= c0) & (cols < c0 + size[1])  # (B, W)
    return (~(in_rows.unsqueeze(2) & in_cols.unsqueeze(1))).to(dtype).unsqueeze(1)


def shift_range(side: int, ratio: float = 0.125) -> int:
    return int(side * ratio + 0.5)


def cutout_size(side: int, ratio: float = 0.5) -> int:
    return int(side * ratio + 0.5)


def _color(x: Tensor, r: Ranks) -> Tensor:
    n = x.shape[0]
    for op in (brightness, saturation, contrast):  # each draws its own u, in the authors' order
        x = op(x, r.rand(n, dtype=x.dtype, device=x.device))
    return x


def _translation(x: Tensor, r: Ranks) -> Tensor:
    n, _, h, w = x.shape
    sx, sy = shift_range(h), shift_range(w)
    tx = r.randint(2 * sx + 1, n, device=x.device) - sx  # (B,) in [-sx, sx]
    ty = r.randint(2 * sy + 1, n, device=x.device) - sy
    return translate(x, tx, ty)


def _cutout(x: Tensor, r: Ranks) -> Tensor:
    n, _, h, w = x.shape
    size = cutout_size(h), cutout_size(w)
    ox = r.randint(h + (1 - size[0] % 2), n, device=x.device)  # (B,) the square's centre row
    oy = r.randint(w + (1 - size[1] % 2), n, device=x.device)
    return x * cutout_mask(x.shape, size, ox, oy, x.dtype, x.device)


POLICIES = {"color": _color, "translation": _translation, "cutout": _cutout}


class DiffAugment(Augment):
    """`policy`: names from color, translation, cutout (the paper's default: all three), comma-separated as the
    authors write it, or a list (on the command line `augment.policy=[color,cutout]`, or quoted:
    `augment.policy='color,cutout'`: Hydra reads an unquoted a,b as a sweep)."""

    def __init__(self, policy: str | Sequence[str] = "color,translation,cutout"):
        parts = policy.split(",") if isinstance(policy, str) else [str(p) for p in policy]
        names = [p.strip() for p in parts if p.strip()]
        unknown = [p for p in names if p not in POLICIES]
        if unknown or not names:
            raise ValueError(f"policy must be a comma-separated list of {', '.join(POLICIES)} (e.g. "
                             f"policy=color,translation,cutout), got {policy!r}"
                             + (f": unknown {', '.join(map(repr, unknown))}" if unknown else ""))
        self.policy = names

    def __call__(self, x: Tensor, ranks: Ranks = Ranks()) -> Tensor:
        for name in self.policy:
            x = POLICIES[name](x, ranks)
        return x
