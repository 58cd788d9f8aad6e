"""`python sample.py ckpt=PATH n=10000 out=samples.npy [seed=0] [ema=true]`

Writes n samples from a checkpoint's generator (its EMA copy when the run kept one): toy data as float32
(N, D), images as uint8 (N, C, H, W) in a .npy file; `out=*.png` writes a grid (images) or scatter (toy).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .config import ConfigError
from .images import save_samples, to_uint8
from .sampling import generate, load_generator


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
