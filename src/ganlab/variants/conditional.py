"""Conditional GAN (Mirza & Osindero 2014): class labels y go into both G and D, so G(z, y) learns p(x | y).

D reads y as input planes (net.d.conditioning=concat, as convolutional cGANs do) or through the projection
discriminator's <embed(y), features> term (conditioning=projection, Miyato & Koyama 2018). Fakes are made in
the real batch's classes, so real and fake batches share labels and the critic's regularizers (gradient
penalty, R1) see one label per sample. Only the nets change: the step is GANModule's.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..labels import Labels
from ..module import GANModule


class ConditionalGAN(GANModule):
    labels = Labels.ALL

    def __init__(self, *args, num_classes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_classes = int(num_classes)

    @classmethod
    def net_classes(cls, model_cfg: Mapping, data_classes: int | None) -> tuple[int, int]:
        return data_classes, data_classes
