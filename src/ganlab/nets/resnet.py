"""BigGAN-style residual nets (SNGAN's ResNets, Miyato et al. 2018; BigGAN, Brock et al. 2019), parameterised by
resolution and width.

Geometry: s0 = 7 for 28x28 images, 4 otherwise; n = log2(size / s0) up/down blocks, one per doubling.
Widths: `constant` gives every block `ch` channels (SNGAN's and BigGAN's 32-pixel nets); `doubling` doubles them
at each coarser scale, so the finest block has `ch` (their 64- and 128-pixel nets, e.g. BigGAN's 16ch at 4x4).

G: z (B, z_dim) -> Linear -> (B, C0, s0, s0), then n up blocks
       main:     BN - ReLU - upsample x2 (nearest) - conv3x3 - BN - ReLU - conv3x3
       shortcut: upsample x2 - conv1x1
   then BN - ReLU - conv3x3 to the image's channels - tanh.
   Class-conditional (num_classes > 0): every BN inside a block is conditional (BigGAN): BatchNorm without its own
   affine, gain 1 + W_g e and bias W_b e per layer, from one learned class embedding e = embed(y) (B, embed_dim)
   shared by all layers (BigGAN's `G_shared`). The output BN stays unconditional, as in BigGAN.
D: an "optimized" first block (SNGAN)
       main:     conv3x3 - ReLU - conv3x3 - avgpool 2;   shortcut: avgpool 2 - conv1x1
   then n - 1 down blocks and `tail` blocks without pooling at s0 x s0
       main:     ReLU - conv3x3 - ReLU - conv3x3 - [avgpool 2];   shortcut: conv1x1 - [avgpool 2] when it pools or
                 changes width (the papers' `learnable_sc`), else identity
   then ReLU and global SUM pooling -> features (B, F), and a linear head -> logits (B,). With `norm` = layer (or
   instance, batch) a norm layer goes before each ReLU inside the blocks (pre-activation, as the WGAN-GP ResNet's
   layer norm). Class conditioning: the projection term <embed(y), features> (Miyato & Koyama 2018; BigGAN) or
   one-hot label planes beside the image channels (`concat`).
   The depth differs from SNGAN's CIFAR D in one respect: its 4 blocks pool twice (32 -> 8) and keep 2 blocks at
   8x8; here every doubling has its block (32 -> 4) and `tail` blocks follow at 4x4, as its and BigGAN's
   ImageNet D do.
Spectral norm (`spectral_norm`) wraps every conv and linear layer, and in D the projection embedding (SNGAN's
SNEmbedID, BigGAN's SNEmbedding); BigGAN puts it in G too, there also on the BN gain/bias projections.
Initialisation (`init`): `xavier` as SNGAN's code (xavier-uniform, gain sqrt(2) for the residual convs, 1 for
shortcuts, linears, embeddings and output conv) or `ortho` as BigGAN's code (orthogonal weights everywhere).
Biases start at 0.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from .layers import (Projection, check_conditioning, label_maps, minibatch_layer, norm_layer, spectral_normalize)

SIZES = (28, 32, 64, 128)
WIDTHS = ("constant", "doubling")
INITS = ("xavier", "ortho")


def _geometry(shape: tuple[int, ...]) -> tuple[int, int]:
    """(s0, n): the coarsest feature map's side and the number of up/down blocks."""
    if len(shape) != 3:
        raise ValueError(f"the ResNet nets take images (C, H, W), got shape {tuple(shape)}: use net=mlp for "
                         f"toy data")
    if shape[1] != shape[2] or shape[1] not in SIZES:
        raise ValueError(f"the ResNet nets support square images of {SIZES} pixels, got {shape[1]}x{shape[2]}")
    s0 = 7 if shape[1] == 28 else 4
    return s0, int(math.log2(shape[1] // s0))


def _widths(kind: str, ch: int, n: int, coarse_first: bool) -> list[int]:
    """Channels of the n blocks: all `ch`, or doubling per coarser scale with `ch` at the finest."""
    if kind not in WIDTHS:
        raise ValueError(f"widths must be one of {WIDTHS}, got {kind!r}")
    if ch < 1:
        raise ValueError(f"ch must be >= 1, got {ch}")
    w = [ch] * n if kind == "constant" else [ch * 2 ** i for i in range(n)]  # fine -> coarse
    return w[::-1] if coarse_first else w


def _check_init(kind: str) -> None:
    if kind not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {kind!r}")


def _init(layer: nn.Module, kind: str, gain: float = 1.0) -> nn.Module:
    """Initialise a conv / linear / embedding's weight (xavier with `gain`, or orthogonal) and zero its bias."""
    if kind == "ortho":
        nn.init.orthogonal_(layer.weight)
    else:
        nn.init.xavier_uniform_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def _conv(a: int, b: int, k: int, init: str, gain: float = 1.0) -> nn.Conv2d:
    return _init(nn.Conv2d(a, b, k, 1, k // 2), init, gain)


RESIDUAL_GAIN = math.sqrt(2)  # SNGAN's xavier gain for the convs of the residual branch


# ---- generator ---------------------------------------------------------------------------------------------
class BatchNorm(nn.Module):
    """BatchNorm2d; class-conditional when embed_dim > 0 (de Vries et al. 2017; BigGAN): no affine of its own,
    x_hat * (1 + W_g e) + W_b e with e (B, embed_dim) the class embedding, so gains start near 1."""

    def __init__(self, channels: int, embed_dim: int, init: str):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=not embed_dim)
        if embed_dim:
            self.gain = _init(nn.Linear(embed_dim, channels, bias=False), init)
            self.bias = _init(nn.Linear(embed_dim, channels, bias=False), init)
        self.conditional = bool(embed_dim)

    def forward(self, x: Tensor, e: Tensor | None) -> Tensor:
        h = self.bn(x)  # (B, C, H, W)
        if not self.conditional:
            return h
        return h * (1 + self.gain(e))[:, :, None, None] + self.bias(e)[:, :, None, None]  # e: (B, E)


class UpBlock(nn.Module):
    """(B, a, s, s) -> (B, b, 2s, 2s)."""

    def __init__(self, a: int, b: int, embed_dim: int, init: str):
        super().__init__()
        gain = RESIDUAL_GAIN if init == "xavier" else 1.0
        self.bn1, self.conv1 = BatchNorm(a, embed_dim, init), _conv(a, b, 3, init, gain)
        self.bn2, self.conv2 = BatchNorm(b, embed_dim, init), _conv(b, b, 3, init, gain)
        self.shortcut = _conv(a, b, 1, init)

    def forward(self, x: Tensor, e: Tensor | None) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, e)), scale_factor=2)  # (B, a, 2s, 2s)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), e)))  # (B, b, 2s, 2s)
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class Generator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], z_dim: int = 128, ch: int = 256, widths: str = "constant",
                 spectral_norm: bool = False, embed_dim: int = 128, init: str = "xavier", num_classes: int = 0):
        super().__init__()
        s0, n = _geometry(shape)
        chans = _widths(widths, ch, n, coarse_first=True)  # e.g. 128x128, ch=64, doubling: [1024, 512, 256, 128, 64]
        _check_init(init)
        if num_classes and embed_dim < 1:
            raise ValueError(f"embed_dim (the class embedding of a conditional G) must be >= 1, got {embed_dim}")
        self.z_dim, self.num_classes, self.s0 = z_dim, num_classes, s0
        e = embed_dim if num_classes else 0
        self.embed = _init(nn.Embedding(num_classes, e), init) if num_classes else None
        self.linear = _init(nn.Linear(z_dim, chans[0] * s0 * s0), init)
        self.blocks = nn.ModuleList(UpBlock(a, b, e, init) for a, b in zip([chans[0], *chans[:-1]], chans))
        self.out_bn = nn.BatchNorm2d(chans[-1])
        self.out = _conv(chans[-1], shape[0], 3, init)
        if spectral_norm:  # BigGAN: every conv and linear of G, the BN projections included (not the embedding)
            spectral_normalize(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes and y is None:
            raise ValueError("this generator is class-conditional (num_classes > 0): pass the labels y")
        e = self.embed(y) if self.num_classes else None  # (B, embed_dim)
        h = self.linear(z).view(z.shape[0], -1, self.s0, self.s0)  # (B, z_dim) -> (B, C0, s0, s0)
        for block in self.blocks:
            h = block(h, e)  # (B, c, s, s) -> (B, c', 2s, 2s)
        return torch.tanh(self.out(F.relu(self.out_bn(h))))  # (B, C, H, W) in [-1, 1]


# ---- discriminator -----------------------------------------------------------------------------------------
class DownBlock(nn.Module):
    """(B, a, s, s) -> (B, b, s/2, s/2), or (B, b, s, s) without pooling; `first`: SNGAN's optimized block."""

    def __init__(self, a: int, b: int, pool: bool, norm: str, init: str, first: bool = False):
        super().__init__()
        gain = RESIDUAL_GAIN if init == "xavier" else 1.0
        self.pool, self.first = pool, first
        self.norm1 = nn.Identity() if first else norm_layer(norm, a)
        self.conv1, self.norm2 = _conv(a, b, 3, init, gain), norm_layer(norm, b)
        self.conv2 = _conv(b, b, 3, init, gain)
        self.shortcut = _conv(a, b, 1, init) if pool or a != b else None  # the papers' learnable_sc

    def _down(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.pool else x

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else F.relu(self.norm1(x))  # the optimized block starts with a conv, not a ReLU
        h = self._down(self.conv2(F.relu(self.norm2(self.conv1(h)))))  # (B, b, s/2, s/2)
        if self.shortcut is None:
            return h + x
        sc = self.shortcut(self._down(x)) if self.first else self._down(self.shortcut(x))  # pool-conv / conv-pool
        return h + sc


class Discriminator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], ch: int = 128, widths: str = "constant", tail: int = 1,
                 norm: str = "none", spectral_norm: bool = False, minibatch: str = "none", init: str = "xavier",
                 num_classes: int = 0, conditioning: str = "projection"):
        super().__init__()
        check_conditioning(conditioning)
        _check_init(init)
        s0, n = _geometry(shape)
        if tail < 0:
            raise ValueError(f"tail (residual blocks after the last pooling) must be >= 0, got {tail}")
        chans = _widths(widths, ch, n, coarse_first=False)  # e.g. 128x128, ch=64, doubling: [64, 128, 256, 512, 1024]
        chans += chans[-1:] * tail
        self.num_classes = num_classes
        self.concat = num_classes if conditioning == "concat" else 0
        ins = [shape[0] + self.concat, *chans[:-1]]
        self.blocks = nn.Sequential(*(DownBlock(a, b, pool=i < n, norm=norm, init=init, first=i == 0)
                                      for i, (a, b) in enumerate(zip(ins, chans))))
        self.features_dim = chans[-1]
        self.minibatch, extra = minibatch_layer(minibatch, self.features_dim)
        self.head = _init(nn.Linear(self.features_dim + extra, 1), init)
        self.projection = Projection(num_classes, self.features_dim) if num_classes and not self.concat else None
        if self.projection is not None:
            _init(self.projection.embed, init)
        if spectral_norm:
            spectral_normalize(self)
            if self.projection is not None:
                _sn(self.projection.embed)  # SNGAN's SNEmbedID / BigGAN's SNEmbedding

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        if self.num_classes and y is None:
            raise ValueError("this critic is class-conditional (num_classes > 0): pass the labels y")
        if self.concat:
            x = torch.cat([x, label_maps(y, self.num_classes, x)], 1)  # (B, C + K, H, W)
        h = self.blocks(x)  # (B, C, H, W) -> (B, F, s0, s0)
        h = F.relu(h).sum((2, 3))  # (B, F): global sum pooling
        logits = self.head(self.minibatch(h)).squeeze(1)  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(h, y)
        return {"logits": logits, "features": h}  # (B,), (B, F)
