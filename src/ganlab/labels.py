"""How a model uses the data's class labels: each variant declares it (GANModule.labels), and train.build_module
refuses data that cannot give them, before training."""
from __future__ import annotations

from enum import Enum


class Labels(Enum):
    NONE = "none"  # ignores them
    ALL = "all"  # every real batch's labels (cGAN, AC-GAN): the module is built with num_classes=K
    SUBSET = "subset"  # a labelled subset of the data (data.labelled: the semi-supervised GAN)
