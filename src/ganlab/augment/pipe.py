"""ADA's augmentation pipeline, groups 'b' (pixel blitting) and 'c' (colour), as functions of drawn parameters.

Followed: NVlabs/stylegan2-ada-pytorch, training/augment.py (AugmentPipe.forward; train.py's augpipe 'bgc' enables
xflip, rotate90, xint, then the general geometric group, then brightness, contrast, lumaflip, hue, saturation).
Each transform is applied to each sample with probability p, its parameters drawn as there:

- xflip: i in {0, 1}; rotate90: k in {0, 1, 2, 3} quarter turns; xint: t ~ U(-1/8, 1/8) of the side per axis,
  rounded to whole pixels. Composed as the inverse map pixel_in = Flip(i) Rot(k quarter turns) (pixel_out - t),
  about the image centre, with reflect padding where the source falls outside (AugmentPipe pads with
  mode='reflect'). AugmentPipe executes every geometric map by 2x upsampling with the sym6 wavelet,
  grid_sample and downsampling; for these integer moves that is the pixel move itself, done here directly
  (a gather: exact and cheap, differentiable w.r.t. the image).
- colour, as one 4x4 homogeneous matrix C per sample on (R, G, B, 1), composed in this order:
  brightness b ~ N(0, 0.2^2) (translate3d(b, b, b)); contrast c = 2^N(0, 0.5^2) (scale3d(c, c, c)); luma flip
  i in {0, 1} (the Householder reflection I - 2 v v^T i, v = (1, 1, 1, 0)/sqrt(3)); hue rotation theta ~ U(-pi, pi)
  about v; saturation s = 2^N(0, 1) (v v^T + (I - v v^T) s). Hue and saturation only for more than one channel.
  RGB: x <- C[:3, :3] x + C[:3, 3]; one channel: C's first three rows averaged, x <- x * sum(C[:3]) + C[3]
  (AugmentPipe's grey-scale rule).

Not here: the general geometric group (isotropic and anisotropic scaling, arbitrary rotation, fractional
translation: 'g' of 'bgc'), image-space filtering, noise and cutout ('f', 'n', 'c' of 'bgcfnc').
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..ranks import Ranks

LUMA = (1.0, 1.0, 1.0, 0.0)  # v before normalisation


# ---- pixel blitting ------------------------------------------------------------------------------------------
def reflect(i: Tensor, n: int) -> Tensor:
    """Indices into [0, n) reflected at the borders without repeating the edge (torch's mode='reflect')."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def blit(x: Tensor, flip: Tensor, quarter: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """x (B, C, S, S) moved per sample: flip (B,) in {0, 1}, quarter (B,) quarter turns in {0..3}, (tx, ty) (B,)
    whole pixels along columns and rows. out[y, x] = in[G_inv (x, y)] with G_inv = Flip Rot (. - t), in doubled
    coordinates about the centre (integers for any side), source indices reflected into the image."""
    b, c, h, w = x.shape
    if h != w:
        raise ValueError(f"blit needs square images (quarter turns keep the shape), got {h}x{w}")
    u = (2 * torch.arange(w, device=x.device) - (w - 1)).view(1, 1, w).expand(b, h, w)  # 2 x - (W - 1)
    v = (2 * torch.arange(h, device=x.device) - (h - 1)).view(1, h, 1).expand(b, h, w)
    u, v = u - 2 * tx.view(-1, 1, 1), v - 2 * ty.view(-1, 1, 1)  # translate2d_inv(tx, ty)
    k = quarter.view(-1, 1, 1)  # rotate2d(k pi/2): (u, v) -> (u cos - v sin, u sin + v cos)
    cos = torch.where(k == 0, 1, torch.where(k == 2, -1, 0))
    sin = torch.where(k == 1, 1, torch.where(k == 3, -1, 0))
    u, v = u * cos - v * sin, u * sin + v * cos
    u = u * (1 - 2 * flip.view(-1, 1, 1))  # scale2d_inv(1 - 2 i, 1)
    src_x, src_y = reflect((u + (w - 1)) // 2, w), reflect((v + (h - 1)) // 2, h)  # (B, H, W)
    index = (src_y * w + src_x).view(b, 1, h * w).expand(b, c, h * w)
    return x.reshape(b, c, h * w).gather(2, index).view(b, c, h, w)


def draw_blit(n: int, side: int, p: float, r: Ranks, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(flip, quarter, tx, ty), each (n,), each transform on with probability p (AugmentPipe's draws)."""
    on = lambda: r.rand(n, device=device) < p  # noqa: E731
    flip = torch.where(on(), torch.floor(r.rand(n, device=device) * 2), 0).long()
    quarter = torch.where(on(), torch.floor(r.rand(n, device=device) * 4), 0).long()
    t = (r.rand(n, 2, device=device) * 2 - 1) * 0.125
    t = torch.where(r.rand(n, 1, device=device) < p, t, 0)
    t = torch.round(t * side).long()
    return flip, quarter, t[:, 0], t[:, 1]


# ---- colour --------------------------------------------------------------------------------------------------
def colour_matrix(b: Tensor, c: Tensor, lumaflip: Tensor, theta: Tensor, s: Tensor) -> Tensor:
    """(B, 4, 4): C = Sat(s) Hue(theta) LumaFlip(i) Contrast(c) Brightness(b), each (B,) (identity values: 0, 1,
    0, 0, 1)."""
    n, dev = b.shape[0], b.device
    eye = torch.eye(4, device=dev).expand(n, 4, 4)
    v = torch.tensor(LUMA, device=dev) / math.sqrt(3)
    vv = torch.outer(v, v)  # (4, 4)
    bright = eye.clone()
    bright[:, :3, 3] = b.view(-1, 1)
    con = torch.diag_embed(torch.stack([c, c, c, torch.ones_like(c)], 1))
    flip = eye - 2 * vv * lumaflip.view(-1, 1, 1)
    sat = vv + (eye - vv) * s.view(-1, 1, 1)
    return sat @ rotate_about(v, theta) @ flip @ con @ bright


def rotate_about(v: Tensor, theta: Tensor) -> Tensor:
    """(B, 4, 4): rotation by theta (B,) about the unit axis v[:3] (AugmentPipe's rotate3d, Rodrigues)."""
    x, y, z = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc, zero, one = 1 - c, torch.zeros_like(theta), torch.ones_like(theta)
    rows = [[x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, zero],
            [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, zero],
            [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, zero],
            [zero, zero, zero, one]]
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


def apply_colour(x: Tensor, m: Tensor) -> Tensor:
    """x (B, C, H, W), C in {1, 3}, transformed by m (B, 4, 4)."""
    b, ch, h, w = x.shape
    m = m.to(x.dtype)
    flat = x.reshape(b, ch, h * w)
    if ch == 3:
        out = m[:, :3, :3] @ flat + m[:, :3, 3:]
    elif ch == 1:
        grey = m[:, :3, :].mean(dim=1, keepdim=True)  # (B, 1, 4)
        out = flat * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]
    else:
        raise ValueError(f"colour transforms need 1 or 3 channels, got {ch}")
    return out.view(b, ch, h, w)


def draw_colour(n: int, channels: int, p: float, r: Ranks, device) -> tuple[Tensor, ...]:
    """(b, c, lumaflip, theta, s), each (n,), each transform on with probability p (AugmentPipe's draws)."""
    on = lambda: r.rand(n, device=device) < p  # noqa: E731
    b = torch.where(on(), r.randn(n, device=device) * 0.2, 0.0)
    c = torch.where(on(), torch.exp2(r.randn(n, device=device) * 0.5), 1.0)
    i = torch.where(on(), torch.floor(r.rand(n, device=device) * 2), 0.0)
    theta = torch.zeros(n, device=device)
    s = torch.ones(n, device=device)
    if channels > 1:
        theta = torch.where(on(), (r.rand(n, device=device) * 2 - 1) * math.pi, 0.0)
        s = torch.where(on(), torch.exp2(r.randn(n, device=device) * 1.0), 1.0)
    return b, c, i, theta, s
