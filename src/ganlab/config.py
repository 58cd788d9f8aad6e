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
from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf
import torch
from torch import nn

from .regularizers import Regularizer


class ConfigError(ValueError):
    """A bad config value or combination; the message names the key and how to fix it."""


def build(node: DictConfig, key: str, **kwargs) -> Any:
    try:
        return instantiate(node, **kwargs)
    except MissingMandatoryValue as e:  # a `???` the user must fill in, e.g. data=folder without data.path
        raise ConfigError(f"{e.full_key} has no value: set it on the command line ({e.full_key}=...)") from None
    except InstantiationException as e:
        cause = e.__cause__ or e
        msg = str(cause)
        unknown = re.search(r"unexpected keyword argument '(\w+)'", msg)
        if unknown:
            raise ConfigError(f"unknown key {key}.{unknown.group(1)}: remove it (or check its spelling)") from None
        raise ConfigError(f"{key}: {msg}") from None


def _number(cfg: DictConfig, key: str) -> float | None:
    value = OmegaConf.select(cfg, key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return value


def _whole(cfg: DictConfig, key: str) -> None:
    value = _number(cfg, key)
    if value is not None and not float(value).is_integer():
        raise ConfigError(f"{key} must be a whole number, got {value}")


def _at_least(cfg: DictConfig, key: str, low: float, fix: str, strict: bool = False) -> None:
    value = _number(cfg, key)
    if value is not None and (value <= low if strict else value < low):
        raise ConfigError(f"{key} must be {'>' if strict else '>='} {low:g}, got {value}: {fix}")


def check_config(cfg: DictConfig) -> None:
    """Range checks with a fix for each, before anything is built."""
    _at_least(cfg, "model.n_critic", 1, "critic steps per generator step: e.g. model.n_critic=5 (WGAN) or 1 (DCGAN)")
    _at_least(cfg, "iterations", 1, "the number of generator iterations to train, e.g. iterations=2500")
    for net in ("g", "d"):
        _at_least(cfg, f"optim.{net}.lr", 0, f"set a learning rate such as optim.{net}.lr=2e-4", strict=True)
    _at_least(cfg, "data.batch_size", 1, "set e.g. data.batch_size=64")
    _at_least(cfg, "model.pack", 1, "samples per critic input (PacGAN): 1 (off), 2, 3 or 4")
    _at_least(cfg, "seed", 0, "the run's random seed is a whole number such as seed=0")
    _at_least(cfg, "net.g.z_dim", 1, "the latent size, e.g. net.g.z_dim=100")
    for key in ("model.n_critic", "iterations", "data.batch_size", "model.pack", "seed", "net.g.z_dim"):
        _whole(cfg, key)
    decay = _number(cfg, "model.ema_decay")
    if decay is not None and not 0 < decay < 1:
        raise ConfigError(f"model.ema_decay must be in (0, 1), got {decay}: e.g. model.ema_decay=0.999, or "
                          f"model.ema_decay=null for no EMA generator")
    for key in ("data.std", "data.sigma", "data.radius", "data.spacing"):  # toy mixtures and gauss1d
        _at_least(cfg, key, 0, f"{key} is a length: set a positive value", strict=True)
    pack, batch = OmegaConf.select(cfg, "model.pack") or 1, OmegaConf.select(cfg, "data.batch_size")
    if batch is not None and batch % pack:
        raise ConfigError(f"data.batch_size={batch} is not a multiple of model.pack={pack}: the critic reads the "
                          f"batch in packs of {pack}; set data.batch_size={batch - batch % pack or pack}")
    for name, reg in (cfg.get("regularizer") or {}).items():
        if "c" in reg:
            _at_least(cfg, f"regularizer.{name}.c", 0, f"WGAN clips to [-c, c]; the paper uses regularizer.{name}.c=0.01",
                      strict=True)
        if "weight" in reg:
            _at_least(cfg, f"regularizer.{name}.weight", 0, "a penalty weight is >= 0 (0 switches it off)")
        if "every" in reg:
            _at_least(cfg, f"regularizer.{name}.every", 1, "apply every k critic steps, k >= 1")


def check_optimizer(factory, key: str) -> None:
    """Build the optimizer once on a dummy parameter, so bad settings fail now, not at the first step."""
    try:
        factory([nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}: {e}") from None


def check_critic(critic: nn.Module, regularizers: Mapping[str, Regularizer]) -> None:
    """Gradient penalties are per sample; BatchNorm couples the samples of a batch (Gulrajani et al. 2017)."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules()):
        for name, reg in regularizers.items():
            if reg.per_sample:
                raise ConfigError(f"regularizer.{name} penalises per-sample input gradients, but the critic uses "
                                  f"BatchNorm (net.d.norm=batch), which couples samples: set net.d.norm=layer "
                                  f"or net.d.norm=none")
