"""Differentiable augmentation of every critic input (`augment=`), one object per file:

- base.py: Augment, the interface the loop calls (GANModule.perturb, critic_loss), and `build_augment`, which
  builds the config's augmentation and refuses data and models it makes no sense with.
- diffaug.py: DiffAugment (Zhao et al. 2020): colour, translation, cutout, always on.
- ada.py: ADA (Karras et al. 2020): the pipeline of pipe.py applied with probability p, p steered by the
  overfitting heuristic r_t = E[sign(D(x_real))].
- pipe.py: ADA's pixel-blitting and colour transforms, as functions of their drawn parameters.
"""
from .base import Augment, build_augment

__all__ = ["Augment", "build_augment"]
