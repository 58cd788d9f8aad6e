"""Sample quality from the command line, in two forms.

A checkpoint's generator (its EMA copy when the run kept one):

    python evaluate.py ckpt=PATH [protocol=tf1|clean|lucic2018 [n=N]] [metrics.KEY=V ...] [data.KEY=V ...]
                       [out=FILE.json] [seed=0] [ema=true]

computes the run's own metrics (metrics/suite.py: the checkpoint's data and metrics config, overridden by
`data.*` / `metrics.*`; `protocol=tf1|clean` is metrics.protocol, the Inception preprocessing), drawing the same
latents as training's metrics (sampling.py), so it reproduces the run's val/* for the same N and network. A
published protocol (metrics/published.py; `protocol=lucic2018`: Lucic et al. 2018's 10k test images against 10k
samples) fixes the real set, N, size and network instead, for a number to put beside that paper's table. Prints
the numbers and writes them as JSON (default: next to the checkpoint, <ckpt>.metrics.json or
<ckpt>.<protocol>.json) with the feature network, its protocol, N and the run's iteration. An earlier
evaluation's file stays: the next one is written beside it, <ckpt>.metrics.1.json, ... (printed).
`n=N` with a published protocol scores N samples against the first N of its real images, on its network: a
ranking of candidates at a fifth of the cost (n=2000), not the protocol's number (FID and recall depend on N),
labelled so in the JSON and the file name (<ckpt>.<protocol>-nN.json).

Two image sets, in the convention pytorch-fid, clean-fid and torch-fidelity share:

    python evaluate.py real=A fake=B [features=inception|classifier] [protocol=tf1|clean]
                       [inception_weights=PATH] [classifier=PATH] [kid_subset=1000] [out=FILE.json]

A and B are folders of images or .npy arrays of uint8 (N, H, W) or (N, C, H, W) (metrics/image_sets.py). Prints
one JSON line: fid, kid, precision, recall, density, coverage (metrics/prdc.py; null when a set has fewer than
6 images), n_real, n_fake, features (the network and its protocol).

What real images score, the floor a generator's numbers sit above (report.py --floor puts it beside the runs):

    python evaluate.py floor=DATA [held_out=t10k] [metrics.KEY=V ...] [data.KEY=V ...] [out=FILE.json]

scores metrics.n images of the data set's held-out split (data.split=held_out: t10k for the idx sets, test for
CIFAR-10 and CelebA; stacked data: triples drawn from it) with the Suite a run of conf/data/DATA.yaml gets, in
place of samples: the same real training set, N and network, so FID and KID are the finite-sample floor and
precision, recall and the class counts what real images reach. Writes the JSON to `out` (default
outputs/floor/DATA-HELD_OUT-nN.json; an earlier file stays, the next is written beside it).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from .callbacks.progress import clock
from .checkpoint_io import write_atomically
from .config import ConfigError, arg_flag, arg_whole, build
from .data.base import source_id
from .labels import Labels
from .metrics.classifier import ClassifierFeatures
from .metrics.features import PROTOCOLS, InceptionFeatures
from .metrics.fid import RealFeatures, embed, fid_kid
from .metrics.image_sets import load_image_set
from .metrics.prdc import MIN_POINTS, NAMES as PRDC, prdc
from .metrics.published import PUBLISHED
from .metrics.suite import Suite
from .nets import fixed_labels
from .sampling import generate, load_generator
from .train import CONF_DIR

USAGE = ("usage: evaluate.py ckpt=PATH [protocol=tf1|clean|lucic2018 [n=N]] [metrics.KEY=VALUE ...] "
         "[data.KEY=VALUE ...] [out=FILE.json] [seed=0] [ema=true]\n"
         "       evaluate.py real=FOLDER|FILE.npy fake=FOLDER|FILE.npy [features=inception|classifier] "
         "[protocol=tf1|clean] [inception_weights=PATH] [classifier=PATH] [kid_subset=1000] [out=FILE.json]\n"
         "       evaluate.py floor=DATA [held_out=t10k] [metrics.KEY=VALUE ...] [data.KEY=VALUE ...] [out=FILE.json]")
FLOOR_ARGS = {"floor", "held_out", "out"}
CKPT_ARGS = {"ckpt", "protocol", "n", "out", "seed", "ema"}
SETS_ARGS = {"real", "fake", "features", "protocol", "inception_weights", "classifier", "kid_subset", "out"}


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _suite_options(metrics) -> dict:
    """The metrics config as Suite's keyword arguments (the callback's own keys dropped)."""
    return {k: v for k, v in OmegaConf.to_container(metrics).items() if k not in ("_target_", "every")}


def evaluate(ckpt: str | Path, overrides: list[str] | None = None, seed: int = 0, ema: bool = True,
             device: str | torch.device | None = None, protocol: str | None = None, n: int | None = None) -> dict:
    """The metrics of a checkpoint's generator: the run's own (protocol None, tf1 or clean) or a published
    protocol's (protocol in metrics/published.py; `n`: a ranking at a smaller N, evaluate_published)."""
    if protocol in PUBLISHED:
        return evaluate_published(ckpt, protocol, overrides, seed, ema, device, n)
    if n is not None:
        raise ConfigError(f"n={n} goes with a published protocol (protocol={next(iter(PUBLISHED))}); a run's own "
                          f"metrics take metrics.n={n}")
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS + tuple(PUBLISHED))}, got {protocol!r}")
        overrides = [*(overrides or []), f"metrics.protocol={protocol}"]
    path = Path(ckpt)
    g, stored = load_generator(path, ema=ema)
    cfg = OmegaConf.create({"data": stored["config"]["data"],
                            "metrics": stored["config"].get("metrics")
                            or OmegaConf.load(Path(CONF_DIR) / "metrics" / "default.yaml")})
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides or []))
    options = _suite_options(cfg.metrics)
    device = _device(device)
    datamodule = build(cfg.data, "data", seed=stored["config"].get("seed", 0))
    try:
        suite = Suite(datamodule, device, **options)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"metrics: {e}") from None
    # a generator conditioned on the data's classes (cGAN, AC-GAN) is scored on the classes it was asked for too
    uses_labels = get_class(stored["config"]["model"]["_target_"]).labels is Labels.ALL
    labels = fixed_labels(g, suite.n) if uses_labels else None
    values = suite(generate(g.to(device), suite.n, seed, device=device), labels)
    return {"ckpt": str(path), "iteration": stored["iteration"], "n": suite.n, "features": suite.features_name,
            "protocol": suite.protocol, "metrics": values}


def evaluate_floor(data: str, held_out: str = "t10k", overrides: list[str] | None = None,
                   device: str | torch.device | None = None) -> dict:
    """The metrics of metrics.n real images of `data`'s held-out split, scored as a run's samples are: against
    the real training images of conf/data/<data>.yaml (with `overrides`), on the same network and N."""
    path = Path(CONF_DIR) / "data" / f"{data}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"floor={data}: no such data set; one of {', '.join(names)}")
    cfg = OmegaConf.create({"data": {k: v for k, v in OmegaConf.load(path).items() if k != "defaults"},
                            "metrics": OmegaConf.load(Path(CONF_DIR) / "metrics" / "default.yaml")})
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides or []))
    if "split" not in cfg.data:
        raise ConfigError(f"floor={data}: it has no held-out split (data.split); the floor needs real images the "
                          f"metrics' real set does not hold: mnist, fashion_mnist, stacked, cifar10 or celeba")
    if held_out == cfg.data.split:
        raise ConfigError(f"held_out={held_out} is the split the metrics' real set comes from (data.split): name "
                          f"the held-out one, e.g. held_out=t10k (idx data) or held_out=test (CIFAR-10, CelebA)")
    options = _suite_options(cfg.metrics)
    device = _device(device)
    datamodule = build(cfg.data, "data")
    try:
        # another seed, so that drawn sets (stacked triples) are not the real set's draws either
        floor = build(OmegaConf.merge(cfg.data, {"split": held_out}), "data", seed=1)
    except ConfigError as e:
        raise ConfigError(f"held_out={held_out}: {e}") from None
    try:
        suite = Suite(datamodule, device, **options)
        available = floor.real_count()
        if available is not None and suite.n > available:
            raise ValueError(f"metrics.n={suite.n} is more than the {available} images of the {held_out} split: "
                             f"set metrics.n <= {available}")
        images = floor.real(suite.n, device)  # (n, C, S, S) in [-1, 1], as a generator's samples
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"metrics: {e}") from None
    return {"floor": data, "held_out": held_out, "n": suite.n, "features": suite.features_name,
            "protocol": suite.protocol, "metrics": suite(images)}


def evaluate_published(ckpt: str | Path, name: str, overrides: list[str] | None = None, seed: int = 0,
                       ema: bool = True, device: str | torch.device | None = None, n: int | None = None) -> dict:
    """FID and KID (and precision / recall / density / coverage, metrics/prdc.py, on the same features) of a
    checkpoint's generator on a published protocol (metrics/published.py). The real
    features are cached (<cache>/stats), so only the first evaluation embeds the real set. `n` < the protocol's
    N: n samples against the first n real images' features, for ranking candidates; "n_protocol" in the result
    says it is not the protocol's number."""
    spec, path, device = PUBLISHED[name], Path(ckpt), _device(device)
    if n is not None and not MIN_POINTS <= n < spec.n:
        raise ConfigError(f"n={n}: protocol={name} ranks at {MIN_POINTS} <= n < {spec.n} (its own N, the default): "
                          f"e.g. n=2000, or leave n out for the protocol's number")
    g, stored = load_generator(path, ema=ema)
    unknown = [o for o in overrides or [] if not o.startswith(("data.root=", "metrics.inception_weights="))]
    if unknown:
        raise ConfigError(f"protocol={name} fixes the real set, N and the network: only data.root and "
                          f"metrics.inception_weights may be set, got {', '.join(unknown)}")
    options = OmegaConf.from_dotlist(overrides or [])
    data = OmegaConf.merge(stored["config"]["data"], options.get("data") or {})
    try:
        datamodule = build(data, "data", seed=stored["config"].get("seed", 0))
        real = spec.real(datamodule)  # (n, 1, 28, 28) uint8
        net = InceptionFeatures((options.get("metrics") or {}).get("inception_weights"), spec.protocol).to(device)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"protocol={name}: {e}") from None
    key = f"{name}-{type(datamodule).__name__.lower()}-{source_id(datamodule.root)}-{spec.split}-n{spec.n}"
    count = n or spec.n
    against = f"{count} samples" if n is None else f"{count} samples against the first {count} (a ranking)"
    print(f"evaluate: {name} on {net.name}: {spec.n} real images (cached after the first time) and {against}; 2 "
          f"CPU cores embed each 10,000 in 10 (a Xeon with AMX) to 23 minutes (an AVX2-only EPYC)", file=sys.stderr)
    real_features = RealFeatures(net, progress=_progress("real images")).get(key, lambda: real.to(device))
    real_features = real_features[:count]  # (count, 2048): the first count of the protocol's real images
    fake = spec.fake(generate(g.to(device), count, seed, device=device))  # (count, C, 28, 28) uint8
    fake_features = embed(net, fake, progress=_progress("samples"))
    values = {**fid_kid(real_features, fake_features), **prdc(real_features.to(device), fake_features.to(device))}
    smaller = {} if n is None else {"n_protocol": spec.n}  # a ranking, not the number to put beside the paper's
    return {"ckpt": str(path), "iteration": stored["iteration"], "n": count, **smaller, "features": net.name,
            "protocol": name, "paper": spec.paper, "metrics": values}


def _progress(what: str):
    """progress(done, n) for embed: a line on stderr every 1,000 images, with the rate so far and the time left
    (2 CPU cores embed ~8 to ~16 Inception images/s: machines of one name differ, so the line measures)."""
    shown = [0]  # images done at the last line
    start = time.monotonic()

    def show(done: int, n: int) -> None:
        if done // 1000 > shown[0] // 1000 or done == n:  # whatever embed's batch size
            rate = done / max(time.monotonic() - start, 1e-6)  # images/s since embedding began
            eta = f" | ETA {clock((n - done) / rate)}" if done < n else ""  # the training progress line's format
            print(f"evaluate: {what}: {done}/{n} embedded | {rate:.1f} images/s{eta}", file=sys.stderr, flush=True)
            shown[0] = done
    return show


def compare_sets(real: str | Path, fake: str | Path, features: str = "inception", protocol: str = "tf1",
                 inception_weights: str | None = None, classifier: str | None = None, kid_subset: int = 1000,
                 device: str | torch.device | None = None) -> dict:
    """FID, KID and precision / recall / density / coverage between two image sets on disk (metrics/image_sets.py);
    the last four are None when a set has fewer than MIN_POINTS images (they take the 5th nearest neighbour)."""
    if features not in ("inception", "classifier"):
        raise ConfigError(f"features must be inception or classifier, got {features!r}")
    if protocol not in PROTOCOLS:
        published = " (a published protocol fixes the real set: use it with ckpt=)" if protocol in PUBLISHED else ""
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)} with real= and fake=, got "
                          f"{protocol!r}{published}")
    if isinstance(kid_subset, bool) or not isinstance(kid_subset, int) or kid_subset < 2:
        raise ConfigError(f"kid_subset must be a whole number >= 2, got {kid_subset!r}")
    if features == "classifier" and not classifier:
        raise ConfigError("features=classifier needs classifier=PATH (a domain classifier that train_classifier.py "
                          "wrote for the data set of both sets)")
    device = _device(device)
    try:
        a, b = load_image_set(real, "real"), load_image_set(fake, "fake")  # uint8 (N, C, H, W) each
        if min(len(a), len(b)) < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {len(a)} real and {len(b)} fake")
        net = (InceptionFeatures(inception_weights, protocol) if features == "inception"
               else ClassifierFeatures(classifier)).to(device)
        fa = embed(net, a.to(device), progress=_progress("real"))  # (N_real, F)
        fb = embed(net, b.to(device), progress=_progress("fake"))  # (N_fake, F)
        values = fid_kid(fa, fb, kid_subset)
        values.update(prdc(fa.to(device), fb.to(device)) if min(len(a), len(b)) >= MIN_POINTS
                      else dict.fromkeys(PRDC))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    return {"real": str(real), "fake": str(fake), "n_real": len(a), "n_fake": len(b), "features": net.name,
            "protocol": protocol if features == "inception" else None, **values}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        try:
            args = OmegaConf.from_dotlist([a for a in argv if not a.startswith(("metrics.", "data."))])
        except Exception as e:  # not KEY=VALUE
            raise ConfigError(f"cannot read the arguments ({e}).\n{USAGE}") from None
        sets, floor = "real" in args or "fake" in args, "floor" in args
        allowed = SETS_ARGS if sets else FLOOR_ARGS if floor else CKPT_ARGS
        unknown = set(args) - allowed
        missing = {"real", "fake"} - set(args) if sets else set() if floor else {"ckpt"} - set(args)
        if unknown or missing or (sets and any(a.startswith(("metrics.", "data.")) for a in argv)):
            extra = [f"unknown: {', '.join(sorted(unknown))}"] * bool(unknown) + \
                    [f"missing: {', '.join(sorted(missing))}"] * bool(missing)
            raise ConfigError("; ".join(extra or ["metrics.* and data.* go with ckpt=, not with real= and fake="])
                              + "\n" + USAGE)
        if sets:
            result = compare_sets(str(args.real), str(args.fake), str(args.get("features", "inception")),
                                  str(args.get("protocol", "tf1")), args.get("inception_weights"),
                                  args.get("classifier"), arg_whole(args, "kid_subset", 1000, 2))
        elif floor:
            result = evaluate_floor(str(args.floor), str(args.get("held_out", "t10k")),
                                    [a for a in argv if a.startswith(("metrics.", "data."))])
        else:
            protocol = args.get("protocol")
            result = evaluate(args.ckpt, [a for a in argv if a.startswith(("metrics.", "data."))],
                              arg_whole(args, "seed", 0, 0), arg_flag(args, "ema", True),
                              protocol=None if protocol is None else str(protocol),
                              n=arg_whole(args, "n", 2000, 1) if "n" in args else None)
    except ConfigError as e:
        sys.exit(f"ganlab: {e}")
    if sets:
        if args.get("out"):
            print(f"wrote {_write(Path(args.out), result)}", file=sys.stderr)
        print(json.dumps(result))
        return
    if floor:
        default = f"outputs/floor/{args.floor}-{result['held_out']}-n{result['n']}.json"
        what = f"{result['n']} real {result['held_out']} images of {args.floor}, features: {result['features']}"
    else:
        ranking = f"-n{result['n']}" if "n_protocol" in result else ""
        suffix = f".{result['protocol']}{ranking}.json" if result["protocol"] in PUBLISHED else ".metrics.json"
        default = f"{args.ckpt}{suffix}"
        what = f"{result['n']} samples, features: {result['features']}, iteration {result['iteration']}"
        if ranking:
            what += f"; not {result['protocol']}'s number, which takes {result['n_protocol']}"
    out = _write(Path(args.get("out") or default), result)
    for k, v in result["metrics"].items():
        print(f"val/{k}\t{v:.6g}")
    print(f"({what}); wrote {out}")


def _write(path: Path, result: dict) -> Path:
    """Writes `result` as JSON at `path`, or beside it (`a.1.json`, ...) where an earlier evaluation wrote one."""
    return write_atomically(path, lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"), keep_old=True)
