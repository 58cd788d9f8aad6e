"""`python sample.py ckpt=PATH n=10000 out=samples.npy [seed=0] [ema=true]`

Writes n samples from a checkpoint's generator (its EMA copy when the run kept one): toy data as float32
(N, D), images as uint8 (N, C, H, W) in a .npy file; `out=*.png` writes a grid (images) or scatter (toy).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from .checkpoint_io import read_checkpoint
from .config import ConfigError, build
from .images import save_samples, to_uint8
from .nets import fixed_labels


def load_generator(ckpt_path: str | Path, ema: bool = True) -> tuple[torch.nn.Module, dict]:
    """The generator of a ganlab checkpoint, rebuilt from the config stored in it (weights_only load), and
    what the checkpoint says of its run: {"config": resolved config, "iteration": generator iterations}."""
    ckpt = read_checkpoint(ckpt_path, "ckpt")
    cfg = OmegaConf.create(ckpt["config"])
    if get_class(cfg.model._target_).translates:
        raise ConfigError(f"ckpt: {ckpt_path} holds an image translator (model=cyclegan: G_ab, G_ba) that draws nothing "
                          f"from noise, so there is nothing to sample or score here; its translations are the run's "
                          f"samples/iter_*.png (A->B) and samples/translations_iter_*.png, val/fid and val/cycle its metrics")
    classes = ckpt.get("generator_classes", 0)  # a conditional G (cGAN, AC-GAN, InfoGAN) is built with them
    g = build(cfg.net.g, "net.g", shape=tuple(ckpt["shape"]), **({"num_classes": classes} if classes else {}))
    state = ckpt["state_dict"]
    prefix = "ema.model." if ema and any(k.startswith("ema.model.") for k in state) else "generator."
    g.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    steps = ckpt.get("ganlab_steps", {})
    n_critic = ckpt["config"].get("model", {}).get("n_critic", 1)
    return g.eval(), {"config": ckpt["config"], "iteration": steps.get("d_steps", 0) // n_critic}


@torch.no_grad()
def generate(g: torch.nn.Module, n: int, seed: int = 0, batch_size: int = 1024,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """n samples (n, *shape) on `device`; latents drawn on the CPU, so a seed gives the same samples anywhere.
    A conditional G draws every class in turn (nets.fixed_labels)."""
    rng = torch.Generator().manual_seed(seed)
    labels = fixed_labels(g, n, device)  # (n,) or None
    return torch.cat([g(torch.randn(min(batch_size, n - i), g.z_dim, generator=rng).to(device),
                        None if labels is None else labels[i:i + batch_size]) for i in range(0, n, batch_size)])


def main(argv: list[str] | None = None) -> None:
    args = OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv)
    unknown = set(args) - {"ckpt", "n", "out", "seed", "ema"}
    try:
        if unknown or "ckpt" not in args:
            raise ConfigError("usage: sample.py ckpt=PATH n=10000 out=samples.npy|grid.png [seed=0] [ema=true]"
                              + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
        n, out = int(args.get("n", 64)), Path(args.get("out", "samples.npy"))
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        if out.suffix not in (".npy", ".png"):
            raise ConfigError(f"out must end in .npy or .png, got {out}")
        g, _ = load_generator(args.ckpt, ema=bool(args.get("ema", True)))
        x = generate(g, n, int(args.get("seed", 0)))
    except ConfigError as e:
        sys.exit(f"ganlab: {e}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        save_samples(x, out)
    else:
        np.save(out, to_uint8(x).numpy() if x.dim() == 4 else x.float().numpy())
    print(f"wrote {n} samples {tuple(x.shape[1:])} to {out}")
