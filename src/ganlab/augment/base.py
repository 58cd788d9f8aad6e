"""The augmentation interface and its construction from the config.

An Augment transforms every critic input, real and fake alike, differentiably (G's gradient flows through it):
GANModule.perturb calls it before the regularizers' perturbations (instance noise), so the critic steps, the
generator step, feature matching's real features and the penalties all see augmented images. The penalties
(GP, R1, ...) are taken on those augmented inputs, as the DiffAugment authors' CIFAR-10 and FFHQ settings do
(data-efficient-gans, DiffAugment-stylegan2/training/loss.py `ns_r1_DiffAugment`, selected by run_cifar.py and
run_ffhq.py; compare_gan's modular_gan.py likewise gives the augmented images to its penalty).

Hooks, all with defaults:

    __call__(x, ranks)                  -> x        every critic input (B, C, H, W), differentiable
    observe(real_logits, n, step, ranks)            D's logits on the (augmented) real batch of critic step
                                                    `step` (n images on this rank): ADA's heuristic
    logs()                              -> {name: value} added to each logged row (train/ada_p)
    state_dict() / load_state_dict(s)               what a checkpoint carries ("ganlab_augment")

Random draws are this rank's block of a global draw (ranks.py), as the regularizers' are.
"""
from __future__ import annotations

from collections.abc import Mapping

from hydra.utils import get_class
from omegaconf import DictConfig
from torch import Tensor

from ..config import ConfigError, build
from ..ranks import Ranks


class Augment:
    #: why steps with this augmentation cannot be captured in CUDA graphs (fast.py), None when they can
    not_capturable: str | None = None
    #: needs D's logits on real images to mean "real" when positive (ADA's heuristic): checked by build_augment
    reads_logit_sign = False

    def __call__(self, x: Tensor, ranks: Ranks = Ranks()) -> Tensor:
        return x

    def observe(self, real_logits: Tensor, n: int, step: int, ranks: Ranks = Ranks()) -> None:
        pass

    def logs(self) -> dict[str, float]:
        return {}

    @classmethod
    def logged(cls, node: Mapping) -> set[str]:
        """The names `logs` adds to a run of the config node `node` (GANModule.logged)."""
        return set()

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        pass

    def check(self, shape: tuple[int, ...]) -> str | None:
        """Why images of `shape` (C, H, W) cannot be augmented by this object, or None."""
        return None


def build_augment(cfg: DictConfig, shape: tuple[int, ...], module_cls: type, variant: str,
                  data: str, choice: str | None = None) -> Augment | None:
    """The config's augmentation (None for augment=none), refused with one ConfigError naming the key where it
    cannot mean anything: data that are not images, a heuristic the model's critic or loss cannot feed."""
    node = cfg.get("augment")
    if not node:
        return None
    if "_target_" not in node:
        raise ConfigError(f"augment.{next(iter(node))} is set but no augmentation is chosen: add augment=diffaug or "
                          f"augment=ada (or remove the augment.* settings)")
    name = choice or str(node._target_).rsplit(".", 2)[-2]  # the module: augment/<name>.py, conf/augment/<name>.yaml
    if len(shape) != 3:
        raise ConfigError(f"augment={name} transforms images, but data={data} gives points of shape {tuple(shape)}: "
                          f"use augment=none with toy data")
    augment = build(node, "augment")
    why = augment.check(tuple(shape))
    if why:
        raise ConfigError(f"augment={name}: {why}")
    if augment.reads_logit_sign:
        if not module_cls.observes_real_logits:
            raise ConfigError(f"augment.target: ADA adapts p from D's logits on the real batch, which "
                              f"model={variant} computes in its own critic step without them: set "
                              f"augment.target=null (a fixed augment.p) or use augment=diffaug")
        loss = cfg.get("loss")
        target = str(loss["_target_"]) if loss else None
        if target is None or not get_class(target).signed_logit:
            what = f"loss={target.rsplit('.', 1)[-1]}" if target else f"model={variant} (an energy critic)"
            raise ConfigError(f"augment.target: ADA's overfitting heuristic reads sign(D(x_real)) as the critic's "
                              f"verdict, which {what} does not give (its logits have no zero point): use a "
                              f"logistic or hinge loss (loss=ns, minimax, hinge), augment.target=null (a fixed "
                              f"augment.p) or augment=diffaug")
    return augment
