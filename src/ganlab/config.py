"""From a composed config to objects, failing early and clearly.

Every object is built by `build(node, key)` before training starts; any error a constructor raises (a bad
value, a missing file, an unknown key) becomes one ConfigError naming the config key and the fix: the full key
(`net.d.norm`) when the message names one of the node's keys. `check_config` comes first, before anything is
built: every value of a node with a `_target_` against its constructor's annotation (a number, a whole number,
true/false, one of a Literal's values), and the ranges of `RANGES` and of the config as a whole.
"""
from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from lightning.pytorch.accelerators import AcceleratorRegistry
from omegaconf import DictConfig, ListConfig, MissingMandatoryValue, OmegaConf
import torch
from torch import nn

from .nets.layers import BATCHNORMS
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
        raise ConfigError(_keyed(msg, key, node)) from None


def _keyed(msg: str, key: str, names) -> str:
    """A constructor's message for `key`'s node, led by the full key it is about: "norm must be ..." ->
    "net.d.norm must be ..."; Lightning's "`Trainer(devices=0)` ..." -> "trainer.devices: `Trainer(devices=0)` ...";
    a message that starts with a full key stays as it is; any other gets "key: " in front."""
    if msg.startswith((f"{key}.", f"{key}=")):
        return msg
    first = re.match(r"(\w+) ", msg)
    if first and first.group(1) in names:
        return f"{key}.{msg}"
    quoted = re.search(r"`(?:\w+\()?(\w+)[`=]", msg)
    if quoted and quoted.group(1) in names:
        return f"{key}.{quoted.group(1)}: {msg}"
    return f"{key}: {msg}"


def _number(cfg: DictConfig, key: str) -> float | None:
    value = OmegaConf.select(cfg, key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return value


def _finite(node: Any, key: str = "") -> None:
    """nan and inf pass every `>= low` test and train into a non-finite step, so no setting may hold one."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{key} must be a finite number, got {node}: set a value, not nan or inf")
    if isinstance(node, dict):
        for k, v in node.items():
            _finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _finite(v, f"{key}[{i}]")


def _whole(cfg: DictConfig, key: str) -> None:
    value = _number(cfg, key)
    if value is not None and not float(value).is_integer():
        raise ConfigError(f"{key} must be a whole number, got {value}")


def arg_whole(args: DictConfig, key: str, default: int, low: int) -> int:
    """A command-line tool's whole-number argument (sample.py, evaluate.py): `key` in `args`, else `default`."""
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be a whole number, got {value!r}: e.g. {key}={default}")
    if value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}: e.g. {key}={default}")
    return value


def arg_flag(args: DictConfig, key: str, default: bool) -> bool:
    """A command-line tool's true/false argument: `key` in `args`, else `default`."""
    value = args.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _at_least(cfg: DictConfig, key: str, low: float, fix: str, strict: bool = False) -> None:
    value = _number(cfg, key)
    if value is not None and (value <= low if strict else value < low):
        raise ConfigError(f"{key} must be {'>' if strict else '>='} {low:g}, got {value}: {fix}")


def check_finite(cfg: DictConfig) -> None:
    """No nan or inf in any setting of `cfg` (check_config's first check; train_classifier's config too)."""
    _finite(OmegaConf.to_container(cfg, resolve=False))


def check_ranges(cfg: DictConfig, ranges, whole=()) -> None:
    """`ranges`' (key, lowest value, whether the value must exceed it, the fix) and that the `whole` keys hold whole
    numbers, each checked where `cfg` has the key (check_config's RANGES; train_classifier's own)."""
    for key, low, strict, fix in ranges:
        _at_least(cfg, key, low, fix, strict)
    for key in whole:
        _whole(cfg, key)


# (key, lowest value, whether the value must exceed it, the fix), checked where the config has the key. Ranges
# that only the built object knows (an image size a net can make) are its constructor's.
RANGES = [
    ("model.n_critic", 1, False, "critic steps per generator step: e.g. model.n_critic=5 (WGAN) or 1 (DCGAN)"),
    ("iterations", 1, False, "the number of generator iterations to train, e.g. iterations=2500"),
    ("optim.g.lr", 0, True, "set a learning rate such as optim.g.lr=2e-4"),
    ("optim.d.lr", 0, True, "set a learning rate such as optim.d.lr=2e-4"),
    ("data.batch_size", 1, False, "set e.g. data.batch_size=64"),
    ("model.pack", 1, False, "samples per critic input (PacGAN): 1 (off), 2, 3 or 4"),
    ("seed", 0, False, "the run's random seed is a whole number such as seed=0"),
    ("net.g.z_dim", 1, False, "the latent size, e.g. net.g.z_dim=100"),
    *[(f"data.{k}", 0, True, f"data.{k} is a length: set a positive value") for k in ("std", "sigma", "radius",
                                                                                       "spacing")],
    ("data.size", 1, False, "the image side in pixels, e.g. data.size=32"),
    ("data.noise", 0, False, "the swiss roll's noise std, e.g. data.noise=0.25"),
    ("data.side", 1, False, "modes per side of the grid, e.g. data.side=5"),
    ("data.n", 1, False, "modes on the ring, e.g. data.n=8"),
    *[(f"net.{n}.{k}", 1, False, f"a layer width, e.g. net.{n}.{k}=64") for n in "gd" for k in ("hidden", "ch")],
    *[(f"net.{n}.depth", 0, False, f"hidden layers, e.g. net.{n}.depth=3") for n in "gd"],
    ("net.d.code", 1, False, "the auto-encoder's code size, e.g. net.d.code=64"),
    ("net.g.tail", 0, False, "channels of G's full-resolution layer, e.g. net.g.tail=16 (0: none)"),
    ("net.d.stem", 0, False, "channels of the critic's stride-1 stem, e.g. net.d.stem=16 (0: none)"),
    ("net.g.embed_dim", 0, False, "the class embedding's size, e.g. net.g.embed_dim=128"),
    ("trainer.log_every_n_steps", 1, False, "iterations between logged rows, e.g. trainer.log_every_n_steps=50"),
    ("callbacks.samples.every", 1, False, "iterations between sample grids, e.g. callbacks.samples.every=500"),
    ("callbacks.samples.n", 1, False, "images in a sample grid, e.g. callbacks.samples.n=64"),
    ("callbacks.traversal.every", 1, False, "iterations between traversal grids, e.g. callbacks.traversal.every=500"),
    ("callbacks.diverged.n", 1, False, "images in the last good grid, e.g. callbacks.diverged.n=64"),
    ("metrics.kid_subset", 2, False, "samples per KID subset, e.g. metrics.kid_subset=1000"),
    ("metrics.k", 0, True, "a sample is high quality within k std of a mode, e.g. metrics.k=3"),
    ("metrics.min_count", 1, False, "samples a mode or class needs to count as covered, e.g. metrics.min_count=1"),
]


def _expects(hint) -> tuple[str, Any] | None:
    """What a parameter's annotation asks of a config value: (what, allowed None) for a number, a whole number,
    true/false, a list of n numbers or one of a Literal's values; None for anything else (strings, paths)."""
    union = typing.get_origin(hint) in (Union, types.UnionType)
    args = [a for a in (typing.get_args(hint) if union else (hint,)) if a is not type(None)]
    optional = union and len(args) < len(typing.get_args(hint))
    if args and all(typing.get_origin(a) is Literal for a in args):
        return tuple(v for a in args for v in typing.get_args(a)), optional
    if args == [bool]:
        return "true or false", optional
    if args == [int]:
        return "a whole number", optional
    if args and all(a in (int, float, torch.Tensor) for a in args):
        return "a number", optional
    items = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and items and all(_expects(a) == ("a number", False) for a in items):
        return f"a list of {len(items)} numbers", False
    return None


def _parameters(target: str) -> dict[str, inspect.Parameter]:
    """The parameters `target` (a class or function) is called with, their annotations evaluated: a class's over
    the __init__ of its bases too (variants pass theirs on); {} for a target that does not import (build says so)."""
    try:
        obj = get_object(target)
    except Exception:
        return {}
    funcs = [k.__dict__["__init__"] for k in reversed(obj.__mro__) if "__init__" in k.__dict__] \
        if isinstance(obj, type) else [obj]
    params = {}
    for f in funcs:  # bases first: a subclass's own annotation wins
        try:
            hints, sig = typing.get_type_hints(f), inspect.signature(f)
        except (TypeError, ValueError, NameError):
            continue
        params.update({n: p.replace(annotation=hints[n]) for n, p in sig.parameters.items() if n in hints})
    return params


def _targets(node: DictConfig, key: str = ""):
    """(full key, node) of every node with a `_target_` under `node`."""
    if "_target_" in node:
        yield key, node
    for name, child in node.items_ex(resolve=False):
        if isinstance(child, DictConfig):
            yield from _targets(child, f"{key}.{name}" if key else str(name))


# Values ganlab resolves before the object is built, beside those its constructor's annotation allows
RESOLVED_HERE = {"trainer.precision": ("auto",)}  # precision.py: bf16-mixed or 32-true for this machine


def check_types(cfg: DictConfig) -> None:
    """Each value of a node with a `_target_` against the annotation of the parameter it is passed to."""
    for key, node in _targets(cfg):
        params = _parameters(node._target_)
        for name in node:
            if name.startswith("_") or name not in params or OmegaConf.is_missing(node, name):
                continue
            expects = _expects(params[name].annotation)
            if expects is None:
                continue
            what, optional = expects
            value, full = node[name], f"{key}.{name}"
            if isinstance(what, tuple):
                what = (*what, *RESOLVED_HERE.get(full, ()))
            if value is None and optional:
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(what, tuple):
                ok = value in what and not isinstance(value, bool)
                what = f"one of {', '.join(map(str, what))}"
            elif what == "true or false":
                ok = isinstance(value, bool)
            elif what.startswith("a list of"):
                ok = isinstance(value, ListConfig) and len(value) == len(params[name].annotation.__args__) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            else:
                ok = number and (what == "a number" or float(value).is_integer())
                what = what if number else "a number"
            if not ok:
                default = params[name].default
                fix = "" if default in (inspect.Parameter.empty, None) else f": e.g. {full}={_show(default)}"
                raise ConfigError(f"{full} must be {what}, got {value!r}{fix}")


def _show(value: Any) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"[{','.join(map(str, value))}]" if isinstance(value, (tuple, list)) else str(value)


def check_config(cfg: DictConfig) -> None:
    """Types and ranges, with a fix for each, before anything is built."""
    check_finite(cfg)
    check_types(cfg)
    # whole numbers that no constructor declares: the root's, and the metrics callback's **suite
    check_ranges(cfg, RANGES, ("iterations", "seed", "metrics.n", "metrics.toy_n", "metrics.kid_subset",
                               "metrics.min_count"))
    # the Trainer is built last, after the loggers have written: its device settings are checked here
    accelerator, devices = OmegaConf.select(cfg, "trainer.accelerator"), OmegaConf.select(cfg, "trainer.devices")
    names = ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))
    if accelerator is not None and accelerator not in names:
        raise ConfigError(f"trainer.accelerator must be one of {', '.join(names)}, got {accelerator!r}: e.g. "
                          f"trainer.accelerator=auto")
    if isinstance(devices, bool) or isinstance(devices, (int, float)) and (devices < 1 and devices != -1
                                                                          or not float(devices).is_integer()):
        raise ConfigError(f"trainer.devices must be a whole number >= 1 (devices per node), -1 (all) or auto, got "
                          f"{devices!r}: e.g. trainer.devices=1")
    fast = OmegaConf.select(cfg, "trainer.fast")  # ganlab's, not Lightning's: build_trainer takes it out
    if fast is not None and not isinstance(fast, bool):
        raise ConfigError(f"trainer.fast must be true or false, got {fast!r}: e.g. trainer.fast=true (or trainer=fast)")
    for net in ("g", "d"):
        alpha = _number(cfg, f"optim.{net}.alpha")
        if alpha is not None and not 0 <= alpha < 1:
            raise ConfigError(f"optim.{net}.alpha must be in [0, 1), got {alpha}: RMSProp's smoothing constant, "
                              f"e.g. optim.{net}.alpha=0.99")
    decay = _number(cfg, "model.ema_decay")
    if decay is not None and not 0 < decay < 1:
        raise ConfigError(f"model.ema_decay must be in (0, 1), got {decay}: e.g. model.ema_decay=0.999, or "
                          f"model.ema_decay=null for no EMA generator")
    pack, batch = OmegaConf.select(cfg, "model.pack") or 1, OmegaConf.select(cfg, "data.batch_size")
    if batch is not None and batch % pack:
        raise ConfigError(f"data.batch_size={batch} is not a multiple of model.pack={pack}: the critic reads the "
                          f"batch in packs of {pack}; set data.batch_size={batch - batch % pack or pack}")
    for name, reg in (cfg.get("regularizer") or {}).items():
        if not isinstance(reg, DictConfig) or "_target_" not in reg:  # a preset's settings for one the list left out
            raise ConfigError(f"regularizer.{name} holds settings ({_settings(reg)}) but regularizer=[...] does not "
                              f"choose {name}: add it to the list (regularizer=[...,{name}]), or drop its settings "
                              f"too (~regularizer.{name})")
        if "c" in reg:
            _at_least(cfg, f"regularizer.{name}.c", 0, f"WGAN clips to [-c, c]; the paper uses regularizer.{name}.c=0.01",
                      strict=True)
        if "weight" in reg:
            _at_least(cfg, f"regularizer.{name}.weight", 0, "a penalty weight is >= 0 (0 switches it off)")
        if "every" in reg:
            _at_least(cfg, f"regularizer.{name}.every", 1, "apply every k critic steps, k >= 1")


def _settings(node) -> str:
    """`weight=1.0, every=16` for a config node, its value for anything else."""
    if isinstance(node, DictConfig):
        return ", ".join(f"{k}={v}" for k, v in node.items())
    return repr(node)


def check_optimizer(factory, key: str) -> None:
    """Build the optimizer once on a dummy parameter, so bad settings fail now, not at the first step."""
    try:
        factory([nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as e:  # torch's "Invalid beta parameter at index 1: 1.5": optim.g.betas
        name = re.match(r"Invalid (\w+)", str(e))
        name = name and {"beta": "betas", "epsilon": "eps", "learning": "lr"}.get(name.group(1), name.group(1))
        raise ConfigError(f"{key}.{name}: {e}" if name else f"{key}: {e}") from None


def check_critic(critic: nn.Module, regularizers: Mapping[str, Regularizer]) -> None:
    """Gradient penalties are per sample; BatchNorm couples the samples of a batch (Gulrajani et al. 2017)."""
    if any(isinstance(m, BATCHNORMS) for m in critic.modules()):
        for name, reg in regularizers.items():
            if reg.per_sample:
                raise ConfigError(f"regularizer.{name} penalises per-sample input gradients, but the critic uses "
                                  f"BatchNorm (net.d.norm=batch), which couples samples: set net.d.norm=layer "
                                  f"or net.d.norm=none")
