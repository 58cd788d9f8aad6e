"""Stacked Fashion-MNIST: three independently drawn images as the R, G and B channels, so 10^3 = 1,000 modes
(class triples) - the benchmark of Unrolled GAN (Metz et al. 2017), VEEGAN and PacGAN, built on
Fashion-MNIST instead of MNIST. The label of a sample is 100 c_R + 10 c_G + c_B.

An "epoch" is one pass of the red channel's permutation; green and blue draw their own indices from the
same per-batch generator state (for the global batch, every rank keeping its block), so batch k stays a pure
function of (seed, k, rank).
"""
from __future__ import annotations

import torch

from .idx import IdxImages


class Stacked(IdxImages):
    num_classes = 1000  # class triples
    labelled_subset = None  # no data.labelled: a sample is three images drawn anew each batch, no fixed images to label

    def __init__(self, *args, labelled: int | None = None, **kwargs):
        if labelled is not None:
            raise ValueError(f"data.labelled={labelled}: stacked data has no fixed images whose labels could be kept "
                             f"(each sample is three images drawn anew); use fashion_mnist, mnist or cifar10")
        super().__init__(*args, **kwargs)
        self.shape = (3, self.size, self.size)

    def batch(self, k, generator, rank, world):
        self._to(generator.device)
        red = self.indices(k, generator, rank, world)  # (B,)
        generator.manual_seed(self.seed * 1_000_003 + 7919 * k + 1)
        gb = torch.randint(len(self.x), (2, len(red) * world), generator=generator, device=generator.device)  # (2, W B)
        gb = gb[:, rank * len(red):(rank + 1) * len(red)]  # (2, B): this rank's block
        idx = torch.stack([red, gb[0], gb[1]])  # (3, B)
        x = self.x[idx, 0].transpose(0, 1)  # (B, 3, S, S)
        y = 100 * self.y[idx[0]] + 10 * self.y[idx[1]] + self.y[idx[2]]  # (B,)
        return x, y

    def stats_key(self, n):
        return f"{super().stats_key(n)}-seed{self.seed}"  # real(n)'s triples are drawn from the seed

    def real_count(self) -> None:
        return None  # triples drawn with replacement: any number

    def real(self, n, device="cpu"):
        self.setup()
        g = torch.Generator().manual_seed(self.seed + 12345)
        idx = torch.randint(len(self.x), (3, n), generator=g)
        return self.x.cpu()[idx, 0].transpose(0, 1).to(device)
