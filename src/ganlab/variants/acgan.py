"""AC-GAN (Odena et al. 2017): G(z, y) is class-conditional; D reads only the image but has an auxiliary
classifier head on its features, predicting the class of real images and of fakes alike.

    D minimises  L_adv + CE(classes(x), y) + CE(classes(G(z, c)), c)
    G minimises  L_adv + CE(classes(G(z, c)), c)

(the paper's L_S + L_C for D and L_C - L_S for G, with the adversarial term in the configured loss).
Fakes are made in the real batch's classes (c = y), as good as drawing c uniformly when classes are balanced.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from ..labels import Labels
from ..logged import Logged
from ..module import GANModule, Latent
from ..nets.heads import Heads
from ..steps.nonfinite import Net


class ACGAN(GANModule):
    labels = Labels.ALL
    LOGS = {**GANModule.LOGS, "d_class_real": Logged(Net.CRITIC), "d_class_fake": Logged(Net.CRITIC),
            "g_class": Logged(Net.GENERATOR)}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *args, num_classes: int,
                 class_weight: float = 1.0, **kwargs):
        if class_weight < 0:
            raise ValueError(f"class_weight must be >= 0, got {class_weight}")
        critic = Heads(discriminator, classes=nn.Linear(discriminator.features_dim, num_classes))  # (B, F) -> (B, K)
        super().__init__(generator, critic, *args, **kwargs)
        self.num_classes, self.class_weight = int(num_classes), float(class_weight)

    @classmethod
    def net_classes(cls, model_cfg: Mapping, data_classes: int | None) -> tuple[int, int]:
        return data_classes, 0  # G is conditioned; D reads images only and predicts their class

    def d_objective(self, real: dict[str, Tensor], fake: dict[str, Tensor], y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        loss, logs = super().d_objective(real, fake, y, latent)
        cls_real = F.cross_entropy(real["classes"], y)
        cls_fake = F.cross_entropy(fake["classes"], latent.c)
        logs.update(self.logs(d_class_real=cls_real, d_class_fake=cls_fake))
        return loss + self.class_weight * (cls_real + cls_fake), logs

    def g_objective(self, fake: dict[str, Tensor], real: Tensor, y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        loss, logs = super().g_objective(fake, real, y, latent)
        cls = F.cross_entropy(fake["classes"], latent.c)
        logs.update(self.logs(g_class=cls))
        return loss + self.class_weight * cls, logs
