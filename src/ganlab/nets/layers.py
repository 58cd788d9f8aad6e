"""Small building blocks shared by the architectures: normalization choice, spectral norm, class conditioning,
and the minibatch layers against mode collapse."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

NORMS = ("batch", "layer", "instance", "none")
# Every BatchNorm class torch has (they share only a private base): layers that couple a batch's samples and keep
# running statistics (config.check_critic, ema.EMA)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
              nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)


def norm_layer(kind: str, channels: int, conv: bool = True) -> nn.Module:
    """A normalization layer by name. `layer` normalises over (C, H, W) per sample; `instance` over (H, W)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    if kind == "instance":
        if not conv:
            raise ValueError("norm 'instance' needs a convolutional net")
        return nn.GroupNorm(channels, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def spectral_normalize(net: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) of every linear and conv layer: W / sigma(W), one power
    iteration per training forward. Call it after weight init (init on a parametrized weight is lost)."""
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            _sn(m)
    return net


# ---- conditioning on class labels ------------------------------------------------------------------------
def one_hot(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """Labels (B,) -> one-hot rows (B, num_classes) in `like`'s dtype and device."""
    return F.one_hot(y, num_classes).to(like.dtype)


def label_maps(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """Labels (B,) -> one-hot planes (B, num_classes, H, W) the size of images `like` (B, C, H, W): the cGAN
    discriminator's input conditioning (Mirza & Osindero 2014, as convolutional cGANs concatenate labels)."""
    return one_hot(y, num_classes, like)[:, :, None, None].expand(-1, -1, *like.shape[2:])


class Projection(nn.Module):
    """The projection discriminator's class term (Miyato & Koyama 2018): <embed(y), features> added to the
    logits, with one embedding row (features,) per class."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, features: Tensor, y: Tensor) -> Tensor:
        return (self.embed(y) * features).sum(1)  # (B, F), (B,) -> (B,)


CONDITIONINGS = ("concat", "projection")


def check_conditioning(kind: str) -> None:
    if kind not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {kind!r}")


# ---- mode-collapse remedies that let the critic see a whole batch ----------------------------------------
class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018): the mean over features of each feature's standard
    deviation within groups of `group` samples, appended as one more channel (or feature). A batch without
    variety gets a value near 0, which the critic learns to reject."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = int(group)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        g = min(self.group, b)
        while b % g:  # the largest group size <= `group` that divides the batch
            g -= 1
        y = x.reshape(g, b // g, *x.shape[1:]).float()  # (G, B/G, *feature dims): sample i and i + B/G share a group
        std = (y.var(0, unbiased=False) + 1e-8).sqrt()  # (B/G, *feature dims)
        std = std.flatten(1).mean(1).to(x.dtype)  # (B/G,)
        std = std.repeat(g).view(b, 1, *([1] * (x.dim() - 2))).expand(b, 1, *x.shape[2:])  # (B, 1, ...)
        return torch.cat([x, std], 1)  # (B, C + 1, ...)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, sec. 3.2): features (B, F) are projected by a tensor T
    to `kernels` rows of `dim` numbers; each sample gets, per kernel, sum_j exp(-||M_i - M_j||_1) over the other
    samples of the batch, appended to its features -> (B, F + kernels)."""

    def __init__(self, features: int, kernels: int = 100, dim: int = 5):
        super().__init__()
        self.kernels, self.dim = int(kernels), int(dim)
        self.T = nn.Parameter(torch.randn(features, self.kernels * self.dim) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        m = (x @ self.T).view(-1, self.kernels, self.dim)  # (B, K, dim)
        dist = (m[:, None] - m[None]).abs().sum(3)  # (B, B, K) L1 distances between all pairs
        o = torch.exp(-dist).sum(1) - 1.0  # (B, K): the sample's closeness to the others (exp(0) = 1 for itself)
        return torch.cat([x, o], 1)


MINIBATCH = ("none", "std", "discrimination")


def minibatch_layer(kind: str, features: int) -> tuple[nn.Module, int]:
    """The layer a critic puts before its last layer for `kind`, and how many features/channels it adds."""
    if kind == "none":
        return nn.Identity(), 0
    if kind == "std":
        return MinibatchStd(), 1
    if kind == "discrimination":
        layer = MinibatchDiscrimination(features)
        return layer, layer.kernels
    raise ValueError(f"minibatch must be one of {MINIBATCH}, got {kind!r}")
