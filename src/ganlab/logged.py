"""The names a run logs, known before anything is built (sweep.check_objective; tests/test_logged_names.py trains
every variant and compares).

A variant declares what its objectives log once, in its class's `LOGS`: name (under train/) -> Logged(step, when).
Its objectives log through GANModule.logs(...), which refuses a name the class did not declare, and
GANModule.logged(cfg) reads the same mapping, adding the names of the parts around the step (penalties, skip
counts, fp16's loss scale, the augmentation's)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from hydra.utils import get_class

from .regularizers import penalties
from .steps.nonfinite import Net, OnNonfinite


class Logged(NamedTuple):
    step: Net  # the step whose objective logs it
    when: Callable[[Mapping], bool] | None = None  # of the composed config: whether its runs log it; None: always


def loss_estimates_w1(cfg: Mapping) -> bool:
    """The configured loss declares that its critic gap estimates W1 (losses.Loss.estimates_w1)."""
    loss = cfg.get("loss")
    return bool(loss) and get_class(loss["_target_"]).estimates_w1


def declared(logs: Mapping[str, Logged], cfg: Mapping, step: Net | None = None) -> set[str]:
    """The declared names (of one step's objective, or both) that a run of `cfg` logs."""
    return {f"train/{name}" for name, d in logs.items()
            if (step is None or d.step is step) and (d.when is None or d.when(cfg))}


def around_the_step(cfg: Mapping) -> set[str]:
    """What the parts around the objectives log: each penalty (critic_loss), the skip count (on_nonfinite=skip),
    fp16's loss scale and overflows, and the augmentation's (ADA's train/ada_p). fp16 on a CPU runs as bf16 without
    a scale: these may be more names than a run logs, never fewer."""
    names = {f"train/{name}" for name in penalties(cfg)}
    if cfg["model"].get("on_nonfinite") == OnNonfinite.SKIP.value:
        names.add("train/skipped")
    if str((cfg.get("trainer") or {}).get("precision")) in ("16-mixed", "16"):
        names |= {"train/loss_scale", "train/overflows"}
    augment = cfg.get("augment")
    if augment and "_target_" in augment:
        names |= get_class(augment["_target_"]).logged(augment)
    return names
