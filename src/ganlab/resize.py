"""How ganlab changes an image's side, and the way back.

`resize` is the one resampling the data modules (and the domain classifier) apply: bilinear, antialiased,
align_corners=False. It acts on rows and columns apart: resize(x) = A x A^T with A (out, in) per side.

`unresize` brings an image made at the enlarged side back to the original side by least squares: the image
y (in, in) whose enlargement A y A^T is nearest to x, y = A+ x A+^T (A+ the pseudo-inverse; A has full column
rank when out >= in). For an enlarged training image it gives back the original exactly, where resizing down
again (bilinear) would blur it: Fashion-MNIST's 28 -> 32 -> 28 that way moves the Lucic-protocol KID of real
training images from 0.0001 to 0.0145 (docs/experiments/published_fid.md). A side that was shrunk cannot be recovered;
`unresize` to a larger side is `resize`.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor


def resize(x: Tensor, size: int) -> Tensor:
    """(N, C, H, W) floats -> (N, C, size, size), bilinear and antialiased (a no-op at that size already)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@lru_cache(maxsize=16)
def resize_matrix(n_in: int, n_out: int) -> Tensor:
    """A (n_out, n_in) float64 with resize(x)[..., i, j] = (A x A^T)[i, j] for x (n_in, n_in)."""
    rows = torch.zeros(n_in, 1, n_in, n_in, dtype=torch.float64)  # image k: ones on row k
    rows[torch.arange(n_in), 0, torch.arange(n_in), :] = 1.0
    # resizing image k gives (A e_k)(A 1)^T, and A 1 = 1 (each output is a weighted mean): column 0 is A e_k
    return resize(rows, n_out)[:, 0, :, 0].T.contiguous()


@lru_cache(maxsize=16)
def unresize_matrix(n_in: int, n_out: int) -> Tensor:
    """A+ (n_in, n_out) float64, the pseudo-inverse of resize_matrix(n_in, n_out): unresize(x) = A+ x A+^T."""
    return torch.linalg.pinv(resize_matrix(n_in, n_out))


def unresize(x: Tensor, size: int) -> Tensor:
    """(N, C, S, S) floats made at side S from images of side `size` by `resize` -> (N, C, size, size):
    the least-squares inverse of that enlargement when S > size, `resize` otherwise."""
    side = x.shape[-1]
    if x.shape[-2] != side:
        raise ValueError(f"unresize takes square images, got {tuple(x.shape[-2:])}")
    if side <= size:
        return resize(x.float(), size)
    p = unresize_matrix(size, side)  # (size, S) float64, on the CPU (where every backend has float64)
    return (p @ x.detach().cpu().double() @ p.T).float().to(x.device)  # (N, C, size, size)
