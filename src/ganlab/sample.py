"""`python sample.py ckpt=PATH n=10000 out=samples.npy [seed=0] [ema=true]`

Writes n samples from a checkpoint's generator (its EMA copy when the run kept one): toy data as float32
(N, D), images as uint8 (N, C, H, W) in a .npy file; `out=*.png` writes a grid (images) or scatter (toy). A file
already at `out` stays: the new one is `samples.1.npy`, `samples.2.npy`, ... (the path written is printed).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .checkpoint_io import write_atomically
from .config import ConfigError, arg_flag, arg_whole
from .images import save_samples, to_uint8
from .sampling import generate, load_generator


def main(argv: list[str] | None = None) -> None:
    args = OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv)
    unknown = set(args) - {"ckpt", "n", "out", "seed", "ema"}
    try:
        if unknown or "ckpt" not in args:
            raise ConfigError("usage: sample.py ckpt=PATH n=10000 out=samples.npy|grid.png [seed=0] [ema=true]"
                              + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
        n, out = arg_whole(args, "n", 64, 1), Path(args.get("out", "samples.npy"))
        seed, ema = arg_whole(args, "seed", 0, 0), arg_flag(args, "ema", True)
        if out.suffix not in (".npy", ".png"):
            raise ConfigError(f"out must end in .npy or .png, got {out}")
        g, _ = load_generator(args.ckpt, ema=ema)
        x = generate(g, n, seed)
    except ConfigError as e:
        sys.exit(f"ganlab: {e}")
    if out.suffix == ".png":
        out = write_atomically(out, lambda tmp: save_samples(x, tmp), keep_old=True)
    else:
        array = to_uint8(x).numpy() if x.dim() == 4 else x.float().numpy()  # (N, C, H, W) uint8 | (N, D) float

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add .npy to the temporary name
                np.save(f, array)
        out = write_atomically(out, write, keep_old=True)
    print(f"wrote {n} samples {tuple(x.shape[1:])} to {out}")
