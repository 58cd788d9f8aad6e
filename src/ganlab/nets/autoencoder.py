"""Auto-encoder critics (EBGAN, Zhao et al. 2017; BEGAN, Berthelot et al. 2017) and their decoder as a generator.

The critic's energy is its per-sample reconstruction error, the mean over the sample's elements of a distance:

    E(x) = mean_i d(Dec(Enc(x))_i, x_i),   d = (a - b)^2 (`l2`, EBGAN) or |a - b| (`l1`, BEGAN)

It returns logits = -E(x), so that "higher = more real" holds as for every other critic, with energy E(x) (B,),
features = the code Enc(x) (B, code) (EBGAN's pull-away term acts on it) and recon = Dec(Enc(x)) (B, *shape).
A mean (not BEGAN's or EBGAN's sum over pixels) keeps energies, margins and k_t on one scale at every resolution.

Images (C, H, W): BEGAN's nets (its Figure 1). Encoder: a 3x3 conv to `ch` channels, then at each scale two
3x3 convs, and between scales a stride-2 3x3 conv whose width grows linearly (ch, 2 ch, 3 ch, ...), down to an
s0 x s0 map, flattened into a linear layer to the code (no nonlinearity). Decoder: a linear layer from the code to
(ch, s0, s0), then at each scale two 3x3 convs and nearest-neighbour x2 upsampling between scales, and a 3x3 conv
to C channels. Every conv but the last is followed by an ELU. s0 = 8 (the paper's constant 8x8 bottom map) for
32, 64 and 128 pixels, 7 for 28. The decoder ends in tanh (images are in [-1, 1] here; the paper's has none).
Vectors (D,) (toy data): the same pair as MLPs with `depth` hidden ELU layers of `hidden` units, linear output.

The generator is the decoder with its own weights, fed z (B, z_dim) in place of a code (BEGAN: "the generator
uses the same architecture, though not the same weights, as the discriminator decoder").
"""
from __future__ import annotations

import math

from torch import Tensor, nn

SIZES = (28, 32, 64, 128)
DISTANCES = ("l1", "l2")


def _geometry(size: int) -> tuple[int, int]:
    """(s0, n): the bottom feature map's side and the number of scale changes (stride-2 convs / upsamplings)."""
    if size not in SIZES:
        raise ValueError(f"the auto-encoder nets support image sizes {SIZES}, got {size}")
    s0 = 7 if size == 28 else 8
    return s0, int(math.log2(size // s0))


def _check(shape: tuple[int, ...], num_classes: int, depth: int) -> None:
    if num_classes:
        raise ValueError("net=autoencoder has no class conditioning: use net=dcgan (or net=mlp) for a conditional "
                         "model")
    if len(shape) == 3 and shape[1] != shape[2]:
        raise ValueError(f"the auto-encoder nets need square images, got {shape[1]}x{shape[2]}")
    if len(shape) not in (1, 3):
        raise ValueError(f"the auto-encoder nets take vectors (D,) or images (C, H, W), got shape {tuple(shape)}")
    if depth < 1:
        raise ValueError(f"depth (hidden layers of the toy-data MLPs) must be >= 1, got {depth}")


def _convs(channels: int) -> list[nn.Module]:
    """Two 3x3 convs with ELUs at one scale: (B, c, s, s) -> (B, c, s, s)."""
    return [nn.Conv2d(channels, channels, 3, 1, 1), nn.ELU(), nn.Conv2d(channels, channels, 3, 1, 1), nn.ELU()]


def encoder(shape: tuple[int, ...], code: int, ch: int, hidden: int, depth: int) -> nn.Module:
    """x (B, *shape) -> code (B, code)."""
    if len(shape) == 1:
        layers, width = [], shape[0]
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ELU()]
            width = hidden
        return nn.Sequential(*layers, nn.Linear(width, code))
    s0, n = _geometry(shape[1])
    layers = [nn.Conv2d(shape[0], ch, 3, 1, 1), nn.ELU()]
    for i in range(n + 1):  # scales size, size/2, ..., s0; width ch * (i + 1)
        layers += _convs(ch * (i + 1))
        if i < n:
            layers += [nn.Conv2d(ch * (i + 1), ch * (i + 2), 3, 2, 1), nn.ELU()]  # subsample, widen
    flat = ch * (n + 1) * s0 * s0  # the bottom map (ch (n + 1), s0, s0), flattened
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, code))  # (B, flat) -> (B, code)


def decoder(shape: tuple[int, ...], code: int, ch: int, hidden: int, depth: int) -> nn.Module:
    """code (B, code) -> x (B, *shape)."""
    if len(shape) == 1:
        layers, width = [], code
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ELU()]
            width = hidden
        return nn.Sequential(*layers, nn.Linear(width, shape[0]))  # linear: toy data has unbounded support
    s0, n = _geometry(shape[1])
    layers = [nn.Linear(code, ch * s0 * s0), nn.Unflatten(1, (ch, s0, s0))]  # (B, code) -> (B, ch, s0, s0)
    for i in range(n + 1):
        layers += _convs(ch)
        if i < n:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return nn.Sequential(*layers, nn.Conv2d(ch, shape[0], 3, 1, 1), nn.Tanh())  # (B, C, H, W) in [-1, 1]


class Generator(nn.Module):
    def __init__(self, shape: tuple[int, ...], z_dim: int = 64, ch: int = 64, hidden: int = 512, depth: int = 3,
                 num_classes: int = 0):
        super().__init__()
        _check(shape, num_classes, depth)
        self.shape, self.z_dim, self.num_classes = tuple(shape), int(z_dim), 0
        self.net = decoder(self.shape, self.z_dim, ch, hidden, depth)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(z)  # (B, z_dim) -> (B, *shape)


class Discriminator(nn.Module):
    def __init__(self, shape: tuple[int, ...], code: int = 64, ch: int = 64, hidden: int = 512, depth: int = 3,
                 distance: str = "l1", num_classes: int = 0):
        super().__init__()
        _check(shape, num_classes, depth)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES} (l2: EBGAN's squared error, l1: BEGAN's absolute "
                             f"error), got {distance!r}")
        self.distance, self.num_classes, self.features_dim = distance, 0, int(code)
        self.encoder = encoder(tuple(shape), self.features_dim, ch, hidden, depth)
        self.decoder = decoder(tuple(shape), self.features_dim, ch, hidden, depth)

    def energy(self, x: Tensor, recon: Tensor) -> Tensor:
        """Per-sample reconstruction error (B,) of recon against x (B, *shape), in fp32."""
        diff = (recon.float() - x.float()).flatten(1)  # (B, prod(shape))
        return (diff.pow(2) if self.distance == "l2" else diff.abs()).mean(1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        h = self.encoder(x)  # (B, *shape) -> (B, code)
        recon = self.decoder(h)  # (B, *shape)
        energy = self.energy(x, recon)  # (B,)
        return {"logits": -energy, "energy": energy, "features": h, "recon": recon}
