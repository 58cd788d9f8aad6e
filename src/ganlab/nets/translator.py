"""The ResNet image-to-image generator of CycleGAN (Zhu et al. 2017, appendix 7.2), after Johnson et al. (2016):

    c7s1-k, d2k, d4k, R4k x blocks, u2k, uk, c7s1-C + tanh

c7s1-k: 7x7 conv with stride 1 to k channels; dk: 3x3 conv with stride 2 (half the side); Rk: a residual block
of two 3x3 convs; uk: 3x3 fractional-strided conv with stride 2 (twice the side); every conv but the last is
followed by a norm (instance norm in the paper) and ReLU. Padding is reflection padding (no zero border for the
net to key on). The paper uses k = 64 with 6 blocks for 128x128 images and 9 for 256x256; `ch` and `blocks`
make it small for 28-32 px images too. Any side that is a multiple of 4 and at least 8 works (two halvings,
reflection padding of 1 at the bottleneck). Weights N(0, 0.02), as in the official code.

    G(x) -> x'   (B, C, H, W) in [-1, 1] -> (B, C, H, W) in [-1, 1]

Unlike the noise generators (nets/__init__.py) it has no `z_dim`: it reads an image, not a latent.
"""
from __future__ import annotations

from torch import Tensor, nn

from .layers import norm_layer


def init_normal(net: nn.Module) -> None:
    """The official CycleGAN init: conv weights N(0, 0.02), biases 0, norm scales 1 and shifts 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int, norm: str):
        super().__init__()
        bias = norm == "none"  # a norm's shift makes the conv bias redundant
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), norm_layer(norm, ch),
                                  nn.ReLU(),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), norm_layer(norm, ch))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)  # (B, ch, h, w)


class Translator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], ch: int = 64, blocks: int = 9, norm: str = "instance"):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"the translator reads images (C, H, W), got data of shape {tuple(shape)}: use image data")
        c, h, w = shape
        if h % 4 or w % 4 or min(h, w) < 8:
            raise ValueError(f"the translator halves the image twice and doubles it back: image sides must be "
                             f"multiples of 4 and at least 8, got {h}x{w} (set data.size)")
        if ch < 1 or blocks < 0:
            raise ValueError(f"net.g.ch must be >= 1 and net.g.blocks >= 0, got ch={ch}, blocks={blocks}")
        self.shape = (c, h, w)
        bias = norm == "none"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(c, ch, 7, bias=bias), norm_layer(norm, ch), nn.ReLU()]  # c7s1-k
        for mult in (1, 2):  # d2k, d4k: (B, k, H, W) -> (B, 4k, H/4, W/4)
            layers += [nn.Conv2d(ch * mult, ch * mult * 2, 3, 2, 1, bias=bias), norm_layer(norm, ch * mult * 2),
                       nn.ReLU()]
        layers += [ResidualBlock(ch * 4, norm) for _ in range(blocks)]  # R4k x blocks at H/4 x W/4
        for mult in (4, 2):  # u2k, uk: (B, 4k, H/4, W/4) -> (B, k, H, W)
            layers += [nn.ConvTranspose2d(ch * mult, ch * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm_layer(norm, ch * mult // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, c, 7), nn.Tanh()]  # c7s1-C
        self.net = nn.Sequential(*layers)
        self.init_weights()

    def init_weights(self) -> None:
        """Fresh weights from the paper's init (a copy of this net re-drawn: CycleGAN's second generator)."""
        init_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, C, H, W) in [-1, 1]
