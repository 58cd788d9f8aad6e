"""DCGAN (Radford et al. 2015), parameterised by resolution and width.

G: z -> (ch * 2^(n-1), s0, s0) by a transposed conv, then n-1 stride-2 transposed convs + BN + ReLU, then a
stride-2 transposed conv to C channels + tanh. s0 = 7 for 28x28 images, 4 otherwise; n = log2(size / s0).
D: the mirror image with stride-2 convs + LeakyReLU(0.2); no norm on the first layer (as in the paper); the
norm of the other layers is selectable (`batch` as in the paper; `layer`/`none` for gradient penalties).
Full-resolution layers (0 = the paper's nets, the same layers and weights' names): G's `tail` = t makes its last
stride-2 transposed conv end in t channels, then norm + ReLU and a 3x3 conv to C channels; D's `stem` = s puts a
3x3 stride-1 conv to s channels + LeakyReLU before its first stride-2 conv. Both let a net work on the pixel grid
itself, where the paper's nets only stride over it.
Weights are initialised N(0, 0.02) (BN scale N(1, 0.02)), as in the paper.
Native side (net.g.native=true; train.py passes the data module's files' side as `native_side`): where the data
module enlarged its files' images (Fashion-MNIST 28 -> 32), G's last map is brought to the files' side by least
squares, tanh there, and enlarged as the data module enlarges real images (resize.py), so every sample is an
enlarged native image.
Class conditioning (num_classes > 0): G reads [z, one-hot y]; D reads one-hot label planes beside the image
channels (`concat`) or adds the projection term <embed(y), features> to its logits (`projection`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..resize import resize_matrix, unresize_matrix
from .layers import (Projection, check_conditioning, label_maps, minibatch_layer, norm_layer, one_hot,
                     spectral_normalize)

SIZES = (28, 32, 64, 128)


def _geometry(size: int) -> tuple[int, int]:
    """(s0, n): the first feature map's side and the number of stride-2 layers."""
    if size not in SIZES:
        raise ValueError(f"DCGAN supports image sizes {SIZES}, got {size}")
    s0 = 7 if size == 28 else 4
    return s0, int(math.log2(size // s0))


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], z_dim: int = 100, ch: int = 64, norm: str = "batch",
                 num_classes: int = 0, native: bool = False, native_side: int | None = None, tail: int = 0):
        super().__init__()
        c, size, width = shape[0], shape[1], shape[2]
        if size != width:
            raise ValueError(f"DCGAN needs square images, got {size}x{width}")
        self.native = native_side if native else None  # train.py passes the data module's files' side (or None)
        if self.native is not None:  # A (size, native): resize's enlargement; A+ (native, size): least squares back
            if not 0 < self.native < size:
                raise ValueError(f"a native side of {self.native} must lie below the image side {size}")
            self.register_buffer("enlarge", resize_matrix(self.native, size).float(), persistent=False)
            self.register_buffer("shrink", unresize_matrix(self.native, size).float(), persistent=False)
        s0, n = _geometry(size)
        self.z_dim, self.num_classes = z_dim, num_classes
        chans = [ch * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 32x32, ch=64: [256, 128, 64]
        layers = [nn.ConvTranspose2d(z_dim + num_classes, chans[0], s0, 1, 0, bias=False), norm_layer(norm, chans[0]),
                  nn.ReLU()]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), norm_layer(norm, b), nn.ReLU()]
        if tail:  # (B, tail, H, W) at full resolution, then a 3x3 conv to the image
            layers += [nn.ConvTranspose2d(chans[-1], tail, 4, 2, 1, bias=False), norm_layer(norm, tail), nn.ReLU(),
                       nn.Conv2d(tail, c, 3, 1, 1)]
        else:
            layers += [nn.ConvTranspose2d(chans[-1], c, 4, 2, 1)]
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], 1)  # (B, z_dim + K)
        h = self.net(z[:, :, None, None])  # (B, z_dim) -> (B, C, H, W), before tanh
        if self.native is None:
            return torch.tanh(h)  # in [-1, 1]
        # the image is made at the native side and enlarged as the data module enlarges the real ones, so a sample
        # is exactly an enlarged native image (the critic cannot tell fakes by what no enlargement makes) and
        # resize.unresize gives its native pixels back; in fp32: under bf16 the enlargement would leave residue
        with torch.autocast(h.device.type, enabled=False):
            small = torch.tanh(self.shrink @ h.float() @ self.shrink.T)  # (B, C, native, native) in [-1, 1]
            return self.enlarge @ small @ self.enlarge.T  # (B, C, H, W) in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], ch: int = 64, norm: str = "batch",
                 spectral_norm: bool = False, minibatch: str = "none", num_classes: int = 0,
                 conditioning: str = "concat", stem: int = 0):
        super().__init__()
        check_conditioning(conditioning)
        c, size = shape[0], shape[1]
        s0, n = _geometry(size)
        self.num_classes = num_classes
        self.concat = num_classes if conditioning == "concat" else 0
        chans = [ch * 2 ** i for i in range(n)]  # e.g. 32x32, ch=64: [64, 128, 256]
        inputs = c + self.concat
        layers = [nn.Conv2d(inputs, stem, 3, 1, 1), nn.LeakyReLU(0.2)] if stem else []  # (B, stem, H, W)
        layers += [nn.Conv2d(stem or inputs, chans[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=norm == "none"), norm_layer(norm, b), nn.LeakyReLU(0.2)]
        self.trunk = nn.Sequential(*layers)
        self.features_dim = chans[-1] * s0 * s0
        if minibatch == "discrimination":  # on the flattened features, then a linear head
            layer, extra = minibatch_layer(minibatch, self.features_dim)
            self.head = nn.Sequential(nn.Flatten(), layer, nn.Linear(self.features_dim + extra, 1))
        else:  # none | std (one more channel); the paper's head: a conv over the whole s0 x s0 map
            layer, extra = minibatch_layer(minibatch, chans[-1])
            self.head = nn.Sequential(layer, nn.Conv2d(chans[-1] + extra, 1, s0, 1, 0))
        self.projection = Projection(num_classes, self.features_dim) if num_classes and not self.concat else None
        self.apply(_init)
        if spectral_norm:
            spectral_normalize(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        if self.concat:
            x = torch.cat([x, label_maps(y, self.num_classes, x)], 1)  # (B, C + K, H, W)
        h = self.trunk(x)  # (B, C, H, W) -> (B, ch * 2^(n-1), s0, s0)
        logits = self.head(h).flatten()  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(h.flatten(1), y)
        return {"logits": logits, "features": h.flatten(1)}  # (B,), (B, F)
