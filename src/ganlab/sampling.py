"""The one sampler: every fixed sample of a generator (training's metrics and sample grids, InfoGAN's traversal
grids, sample.py, evaluate.py, the last good samples on divergence) draws its latents here, the same way, so a
checkpoint scored by evaluate.py gets the numbers its run logged.

- `latents(n, z_dim, seed)`: z (n, z_dim) from a torch.Generator on the CPU seeded with `seed`, drawn in one
  call: the same values on any device (they are moved to it after) and for any batch size.
- `generate(g, n, seed, batch_size, device)`: G of those latents in batches, a conditional G asked for every
  class in turn (nets.fixed_labels; InfoGAN's categorical code is such a label, its continuous codes the first
  entries of z, so it needs nothing else).
- `load_generator(ckpt, ema)`: the generator of a checkpoint (its EMA copy when the run kept one).

A core module: the command-line modules (sample.py, evaluate.py) and the core (module.py, divergence.py) import
it, never each other.
"""
from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import Tensor, nn

from .checkpoint_io import read_checkpoint
from .config import ConfigError, build, check_types
from .nets import fixed_labels, side_options


def latents(n: int, z_dim: int, seed: int = 0) -> Tensor:
    """n latents (n, z_dim) on the CPU from a generator seeded with `seed`. One draw for all n: torch's CPU
    normal sampler fills blocks of 16 values, so n drawn in pieces would depend on where the pieces end."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(g: nn.Module, n: int, seed: int = 0, batch_size: int = 1024,
             device: torch.device | str = "cpu") -> Tensor:
    """n samples (n, *shape) of g on `device` (where g must be), in g's current mode: latents(n, g.z_dim, seed)
    fed in batches of batch_size, a conditional G given labels 0, 1, ..., K-1, 0, ... (nets.fixed_labels)."""
    z = latents(n, g.z_dim, seed)  # (n, z_dim) on the CPU
    labels = fixed_labels(g, n, device)  # (n,) or None
    return torch.cat([g(z[i:i + batch_size].to(device), None if labels is None else labels[i:i + batch_size])
                      for i in range(0, n, batch_size)])  # (n, *shape)


def load_generator(ckpt_path: str | Path, ema: bool = True) -> tuple[nn.Module, dict]:
    """The generator of a ganlab checkpoint in eval mode, rebuilt from the config stored in it (weights_only
    load), its EMA copy when `ema` and the run kept one, and what the checkpoint says of its run:
    {"config": resolved config, "iteration": generator iterations}."""
    ckpt = read_checkpoint(ckpt_path, "ckpt")
    cfg = OmegaConf.create(ckpt["config"])
    if get_class(cfg.model._target_).translates:
        raise ConfigError(f"ckpt: {ckpt_path} holds an image translator (model=cyclegan: G_ab, G_ba) that draws nothing "
                          f"from noise, so there is nothing to sample or score here; its translations are the run's "
                          f"samples/iter_*.png (A->B) and samples/translations_iter_*.png, val/fid and val/cycle its metrics")
    try:  # a value today's G reads otherwise (a development build's net.g.native=28) must not build another G
        check_types(OmegaConf.create({"net": {"g": cfg.net.g}}))
    except ConfigError as e:
        raise ConfigError(f"ckpt: {ckpt_path} was written with a config this ganlab reads otherwise ({e}); "
                          f"sample and score it with the ganlab that trained it") from None
    classes = ckpt.get("generator_classes", 0)  # a conditional G (cGAN, AC-GAN, InfoGAN) is built with them
    g = build(cfg.net.g, "net.g", shape=tuple(ckpt["shape"]), **({"num_classes": classes} if classes else {}),
              **side_options(cfg.net.g, ckpt.get("native_side")))
    state = ckpt["state_dict"]
    prefix = "ema.model." if ema and any(k.startswith("ema.model.") for k in state) else "generator."
    g.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    steps = ckpt.get("ganlab_steps", {})
    n_critic = ckpt["config"].get("model", {}).get("n_critic", 1)
    return g.eval(), {"config": ckpt["config"], "iteration": steps.get("d_steps", 0) // n_critic}
