"""Extra heads on a discriminator's features, sharing its trunk: AC-GAN's class logits, InfoGAN's Q.

`Heads(D, name=module, ...)(x, y)` returns D's dict plus {name: module(features)}; the heads are part of the
critic, so its optimizer, checkpoints, DDP wrapping and finite checks include them.
"""
from __future__ import annotations

from torch import Tensor, nn


def mlp_head(features: int, out: int, hidden: int = 128) -> nn.Module:
    """features (B, F) -> (B, out): one hidden layer, as InfoGAN's Q and AC-GAN's auxiliary classifier."""
    return nn.Sequential(nn.Linear(features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out))


class Heads(nn.Module):
    def __init__(self, net: nn.Module, **heads: nn.Module):
        super().__init__()
        self.net, self.heads = net, nn.ModuleDict(heads)
        self.num_classes, self.features_dim = net.num_classes, net.features_dim

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        out = self.net(x, y)
        return {**out, **{name: head(out["features"]) for name, head in self.heads.items()}}
