"""Small building blocks shared by the architectures: normalization choice and spectral norm."""
from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

NORMS = ("batch", "layer", "instance", "none")


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
