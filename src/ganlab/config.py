"""From a composed config to objects, failing early and clearly.

Every object is built by `build(node, key)` before training starts; any error a constructor raises (a bad
value, a missing file, an unknown key) becomes one ConfigError naming the config key and the fix.
`check_config` adds the range checks that are about the config as a whole.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .regularizers import Regularizer


class ConfigError(ValueError):
    """A bad config value or combination; the message names the key and how to fix it."""


def build(node: DictConfig, key: str, **kwargs) -> Any:
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        msg = str(cause)
        unknown = re.search(r"unexpected keyword argument '(\w+)'", msg)
        if unknown:
            raise ConfigError(f"unknown key {key}.{unknown.group(1)}: remove it (or check its spelling)") from None
        raise ConfigError(f"{key}: {msg}") from None


def _positive(cfg: DictConfig, key: str, fix: str) -> None:
    value = OmegaConf.select(cfg, key)
    if value is not None and not value > 0:
        raise ConfigError(f"{key} must be > 0, got {value}: {fix}")


def check_config(cfg: DictConfig) -> None:
    """Range checks with a fix for each, before anything is built."""
    if cfg.model.n_critic < 1:
        raise ConfigError(f"model.n_critic must be >= 1 (critic steps per generator step), got "
                          f"{cfg.model.n_critic}: set e.g. model.n_critic=5 (WGAN) or 1 (DCGAN)")
    if cfg.iterations < 1:
        raise ConfigError(f"iterations must be >= 1 (generator iterations to train), got {cfg.iterations}")
    for net in ("g", "d"):
        _positive(cfg, f"optim.{net}.lr", f"set a learning rate such as optim.{net}.lr=2e-4")
    _positive(cfg, "data.batch_size", "set e.g. data.batch_size=64")
    for name, reg in (cfg.get("regularizer") or {}).items():
        if "c" in reg:
            _positive(cfg, f"regularizer.{name}.c", f"WGAN clips to [-c, c]; the paper uses regularizer.{name}.c=0.01")
        if "weight" in reg and reg.weight < 0:
            raise ConfigError(f"regularizer.{name}.weight must be >= 0, got {reg.weight}")
        if "every" in reg and reg.every < 1:
            raise ConfigError(f"regularizer.{name}.every must be >= 1 (apply every k critic steps), got {reg.every}")


def check_critic(critic: nn.Module, regularizers: Mapping[str, Regularizer]) -> None:
    """Gradient penalties are per sample; BatchNorm couples the samples of a batch (Gulrajani et al. 2017)."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules()):
        for name, reg in regularizers.items():
            if reg.per_sample:
                raise ConfigError(f"regularizer.{name} penalises per-sample input gradients, but the critic uses "
                                  f"BatchNorm (net.d.norm=batch), which couples samples: set net.d.norm=layer "
                                  f"or net.d.norm=none")
