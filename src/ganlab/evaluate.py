"""`python evaluate.py ckpt=PATH [metrics.n=10000] [metrics.features=inception] [data.root=DIR] [out=FILE.json]`

Computes the configured sample-quality metrics (metrics/suite.py) for a checkpoint's generator (its EMA copy
when the run kept one): the checkpoint's own data and metrics config, overridden by `data.*` / `metrics.*`
on the command line. Prints the numbers and writes them as JSON (default: next to the checkpoint,
<ckpt>.metrics.json) with the feature network, N and the run's iteration.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from .config import ConfigError, build
from .metrics.suite import Suite
from .nets import fixed_labels
from .sampling import generate, load_generator
from .train import CONF_DIR

USAGE = "usage: evaluate.py ckpt=PATH [metrics.KEY=VALUE ...] [data.KEY=VALUE ...] [out=FILE.json] [seed=0] [ema=true]"


def evaluate(ckpt: str | Path, overrides: list[str] | None = None, seed: int = 0, ema: bool = True,
             device: str | torch.device | None = None) -> dict:
    path = Path(ckpt)
    g, stored = load_generator(path, ema=ema)
    cfg = OmegaConf.create({"data": stored["config"]["data"],
                            "metrics": stored["config"].get("metrics")
                            or OmegaConf.load(Path(CONF_DIR) / "metrics" / "default.yaml")})
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides or []))
    options = {k: v for k, v in OmegaConf.to_container(cfg.metrics).items() if k not in ("_target_", "every")}
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    datamodule = build(cfg.data, "data", seed=stored["config"].get("seed", 0))
    try:
        suite = Suite(datamodule, device, **options)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"metrics: {e}") from None
    # a generator conditioned on the data's classes (cGAN, AC-GAN) is scored on the classes it was asked for too
    uses_labels = getattr(get_class(stored["config"]["model"]["_target_"]), "labels", None) == "all"
    labels = fixed_labels(g, suite.n) if uses_labels else None
    values = suite(generate(g.to(device), suite.n, seed, device=device), labels)
    return {"ckpt": str(path), "iteration": stored["iteration"], "n": suite.n, "features": suite.features_name,
            "metrics": values}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = OmegaConf.from_dotlist([a for a in argv if not a.startswith(("metrics.", "data."))])
    unknown = set(args) - {"ckpt", "out", "seed", "ema"}
    try:
        if unknown or "ckpt" not in args:
            raise ConfigError(USAGE + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
        result = evaluate(args.ckpt, [a for a in argv if a.startswith(("metrics.", "data."))],
                          int(args.get("seed", 0)), bool(args.get("ema", True)))
    except ConfigError as e:
        sys.exit(f"ganlab: {e}")
    out = Path(args.get("out") or f"{args.ckpt}.metrics.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result["metrics"].items():
        print(f"val/{k}\t{v:.6g}")
    print(f"({result['n']} samples, features: {result['features']}, iteration {result['iteration']}); wrote {out}")
