"""The PatchGAN critic of pix2pix and CycleGAN (Isola et al. 2017; Zhu et al. 2017, appendix 7.2):

    C64-C128-C256-C512, then a conv to 1 channel

Ck: 4x4 conv with k channels, norm (instance norm in the paper; none on the first layer) and LeakyReLU(0.2).
The first `layers` convs have stride 2, the last Ck and the output conv stride 1; channels double per layer up
to 8 * ch. With layers=3 each output logit judges one 70x70 patch of the image (the paper's choice on 256x256
images); layers=1 or 2 gives 16x16 or 34x34 patches, for small images. Every patch's logit is kept: the losses
(losses.py) average over all of them, so the critic says "real or fake" per patch, as in the paper.

    D(x) -> dict(logits=(B, P) one per patch, features=(B, F) the last hidden map flattened)

Weights N(0, 0.02), as in the official code.
"""
from __future__ import annotations

from torch import Tensor, nn

from .layers import norm_layer
from .translator import init_normal


def _side(side: int, layers: int) -> tuple[int, int]:
    """(side of the last hidden map, side of the logit map) for an input side."""
    for _ in range(layers):
        side = (side + 2 - 4) // 2 + 1  # 4x4, stride 2, padding 1
    hidden = side + 2 - 4 + 1  # 4x4, stride 1, padding 1
    return hidden, hidden + 2 - 4 + 1


class PatchGAN(nn.Module):
    num_classes = 0  # reads images only

    def __init__(self, shape: tuple[int, int, int], ch: int = 64, layers: int = 3, norm: str = "instance"):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"the patchgan reads images (C, H, W), got data of shape {tuple(shape)}: use image data")
        c, h, w = shape
        if layers < 1 or ch < 1:
            raise ValueError(f"net.d.layers and net.d.ch must be >= 1, got layers={layers}, ch={ch}")
        (fh, oh), (fw, ow) = _side(h, layers), _side(w, layers)
        if min(oh, ow) < 1:
            raise ValueError(f"net.d.layers={layers} leaves no patch to judge on {h}x{w} images: lower net.d.layers "
                             f"(patches of 16, 34, 70 px for 1, 2, 3 layers) or raise data.size")
        bias = norm == "none"
        chans = [ch * min(2 ** i, 8) for i in range(layers + 1)]  # e.g. ch=64, layers=3: [64, 128, 256, 512]
        trunk = [nn.Conv2d(c, chans[0], 4, 2, 1), nn.LeakyReLU(0.2)]  # no norm on the first layer
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1
            trunk += [nn.Conv2d(chans[i - 1], chans[i], 4, stride, 1, bias=bias), norm_layer(norm, chans[i]),
                      nn.LeakyReLU(0.2)]
        self.trunk = nn.Sequential(*trunk)
        self.head = nn.Conv2d(chans[-1], 1, 4, 1, 1)
        self.features_dim = chans[-1] * fh * fw
        self.patches = oh * ow
        self.init_weights()

    def init_weights(self) -> None:
        """Fresh weights from the paper's init (a copy of this net re-drawn: CycleGAN's second critic)."""
        init_normal(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        h = self.trunk(x)  # (B, C, H, W) -> (B, 8ch, fh, fw)
        return {"logits": self.head(h).flatten(1), "features": h.flatten(1)}  # (B, P = oh * ow), (B, F)
