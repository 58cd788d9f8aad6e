"""Every preset on the data its README line names, every experiment on its data's format, every loss with every
regularizer and augmentation: each a few steps. Presets, experiments, losses, regularizers and augmentations are
the files found under conf/, never a list here."""
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from ganlab.config import ConfigError
from ganlab.sampling import generate, load_generator
from ganlab.train import CONF_DIR, train

from .conftest import make_cfg, read_metrics


def options(group: str) -> list[str]:
    """The options of a config group, found as conf/<group>/*.yaml: a new file is tested without being listed here."""
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


PRESETS, EXPERIMENTS = options("model"), options("experiment")
LOSSES, REGULARIZERS, AUGMENTS = options("loss"), options("regularizer"), options("augment")
SMALL_TOY = ["data=grid25", "net.g.hidden=32", "net.d.hidden=32"]


def result_metrics(result) -> dict[str, float]:
    """train()'s final metrics, whether it returns them as a dict or as a result holding `.metrics`."""
    return getattr(result, "metrics", result)


def small_images(idx_root):
    return ["data=fashion_mnist", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16"]


def check_run(out: Path, iterations: int):
    rows = read_metrics(out)
    assert max(r["step"] for r in rows) == iterations  # step = generator iterations
    for key in ("train/d_loss", "train/g_loss"):
        values = [r[key] for r in rows if key in r]
        assert values and all(math.isfinite(v) for v in values), key
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k.startswith("train/")), rows
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "samples").glob("iter_*.png"))


def _flat(node, prefix=""):
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


# ---- every preset on the data its docs line names ---------------------------------------------------------
# docs/training.md's variants: a preset trains on toy points and on images unless its paragraph names narrower data: labelled
# images (cgan, acgan, biggan_small), a labelled subset (sgan: data.labelled=N), two image domains (cyclegan:
# data=sneaker2boot), DCGAN net widths (dcgan_fast, lsgan_fast: images only). A preset not named here runs on both.
DOCUMENTED = {"cgan": ["images"], "acgan": ["images"], "biggan_small": ["images"], "sgan": ["labelled_subset"],
              "cyclegan": ["sneaker2boot"], "dcgan_fast": ["images"], "lsgan_fast": ["images"]}
KINDS = {  # data kind -> its config (the real data where the files are, as README's commands run)
    "toy": ["data=grid25"],
    "images": ["data=fashion_mnist"],
    "labelled_subset": ["data=fashion_mnist", "data.labelled=10"],  # the fixture: ~25 images per class
    "sneaker2boot": ["data=sneaker2boot"],
}


def on_fixture(kind: str, idx_root) -> list[str]:
    """Data of `kind` read from the Fashion-MNIST-format fixture (conftest.py), small batches."""
    if kind == "toy":
        return KINDS[kind]
    cycle = ["callbacks.translations.cycle_n=8"] if kind == "sneaker2boot" else []  # the fixture's t10k: ~6 boots
    return [*KINDS[kind], f"data.root={idx_root}", "data.batch_size=16", *cycle]


HEAVY = {("biggan_small", "images"), ("r3gan", "images")}  # over ~2 s on one thread (5-9 s): the slow lane


def documented_runs() -> list:
    return [pytest.param(preset, kind, marks=[pytest.mark.slow] if (preset, kind) in HEAVY else [])
            for preset in PRESETS for kind in DOCUMENTED.get(preset, ["toy", "images"])]


def small_nets(cfg) -> list[str]:
    """Overrides that shrink whatever widths and depths the composed nets have (conv channels, MLP widths,
    translator blocks, PatchGAN layers); on toy points a conv net (no `hidden`) gives way to MLPs, as README's
    sngan line says (net=mlp on the command line wins)."""
    if cfg.data._target_.startswith("ganlab.data.toy.") and "hidden" not in cfg.net.g:
        return ["net=mlp", "net.g.hidden=32", "net.d.hidden=32"]
    out = []
    for net, key, value in (("g", "ch", 8), ("d", "ch", 8), ("g", "hidden", 32), ("d", "hidden", 32),
                            ("g", "blocks", 2), ("d", "layers", 2)):
        if key in cfg.net[net]:
            out.append(f"net.{net}.{key}={value}")
    return out


def documented_overrides(preset: str, kind: str, idx_root, *extra: str) -> list[str]:
    """model=PRESET on the fixture's data of `kind`, nets made small, `extra` on top: what a test passes to make_cfg."""
    overrides = [f"model={preset}", *on_fixture(kind, idx_root), *extra]
    return overrides + small_nets(make_cfg(Path("unused"), *overrides))  # composed only: nothing is written


IMAGES_ONLY = {preset for preset, kinds in DOCUMENTED.items() if "toy" not in kinds}


def preset_overrides(preset: str, data: str, idx_root) -> list[str]:
    """Small runs of `preset` for other tests (model= left out): data="toy", or "images" for the preset's own kind of
    images (its labelled subset, its two domains)."""
    kind = data if data == "toy" else next(k for k in DOCUMENTED.get(preset, ["images"]) if k != "toy")
    return documented_overrides(preset, kind, idx_root)[1:]


@pytest.mark.parametrize("preset", PRESETS)
def test_a_presets_own_settings_hold_in_the_composed_config(tmp_path, preset):
    """A preset may set keys of any group (model=cyclegan: metrics.n=1000, for sneaker2boot's 6,000 real images);
    a group composed after it would set them back (metrics/default.yaml's n=10000 did): every value the preset's
    file sets is the composed config's."""
    own = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "model" / f"{preset}.yaml"), resolve=False)
    own.pop("defaults", None)
    composed = _flat(OmegaConf.to_container(make_cfg(tmp_path, f"model={preset}", "metrics=default"), resolve=False))
    assert {k: composed.get(k, "<unset>") for k in _flat(own)} == _flat(own)


def test_presets_are_all_here():
    assert set(PRESETS) >= {"gan", "nsgan", "dcgan", "lsgan", "wgan", "wgan_gp", "sngan", "cgan", "acgan", "infogan"}


@pytest.mark.parametrize("preset, kind", documented_runs())
def test_preset_trains_resumes_and_samples(tmp_path, idx_root, preset, kind):
    cfg = make_cfg(tmp_path / "a", *documented_overrides(preset, kind, idx_root), "iterations=2")
    resumed = cfg.copy()  # the same overrides with out_dir, iterations and ckpt_path set: no second compose
    resumed.out_dir, resumed.iterations = str(tmp_path / "b"), 3
    resumed.ckpt_path = str(tmp_path / "a" / "checkpoints" / "last.ckpt")
    result = train(cfg)
    check_run(tmp_path / "a", 2)
    assert all(math.isfinite(result_metrics(result)[k]) for k in ("train/d_loss", "train/g_loss"))
    train(resumed)
    assert [r["step"] for r in read_metrics(tmp_path / "b") if "train/d_loss" in r] == [3]  # went on from 2
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    if kind == "sneaker2boot":  # a translator draws nothing from noise: sample.py says so, in one line
        with pytest.raises(ConfigError, match="holds an image translator"):
            load_generator(last)
        return
    g, run = load_generator(last)
    assert run["iteration"] == 3
    x = generate(g, 5)
    assert x.shape[0] == 5 and torch.isfinite(x).all()


def test_the_exceptions_name_presets_and_runs_that_exist():
    """DOCUMENTED and HEAVY name presets by hand: a renamed or removed preset leaves no stale entry there."""
    assert set(DOCUMENTED) <= set(PRESETS) and all(set(kinds) <= set(KINDS) for kinds in DOCUMENTED.values())
    assert HEAVY <= {tuple(p.values) for p in documented_runs()}


def own_settings(group: str, name: str) -> dict:
    """conf/<group>/<name>.yaml as written (its defaults list included)."""
    return OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / group / f"{name}.yaml"), resolve=False)


# README's commands on the real Fashion-MNIST (its files are on this machine, and CI's), with the metric settings of
# their files: a preset or experiment that sets keys of the metrics group (model=cyclegan: metrics.n=1000; fmnist_*:
# metrics.every and the best checkpoint by val/fid) has them checked in a run, not only in the composed config
# (cyclegan's run stopped with 'metrics.n=10000 is more than the 6000 real images' when a later group reset them).
# metrics.n small where the file leaves it at the default; the scores read the Fashion-MNIST domain classifier.
REAL_FASHION = [[f"model={p}", *KINDS[kind]] for p in PRESETS if "metrics" in own_settings("model", p)
                for kind in DOCUMENTED.get(p, ["images"]) if kind != "toy"] + \
               [[f"experiment={e}"] for e in EXPERIMENTS
                if {"override /data": "fashion_mnist"} in own_settings("experiment", e).get("defaults", [])]


@pytest.mark.slow
@pytest.mark.parametrize("run", REAL_FASHION, ids=lambda run: " ".join(run))
def test_runs_on_real_fashion_mnist_with_their_own_metric_settings(tmp_path, fashion_classifier, run):
    overrides = [*run, "metrics=default", "data.batch_size=16"]
    cfg = make_cfg(tmp_path, *overrides)
    overrides += small_nets(cfg) + ["iterations=2"]
    group, name = run[0].split("=")
    if "n" not in own_settings(group, name).get("metrics", {}):  # the file leaves it to the default (10,000)
        overrides.append("metrics.n=200")
    cfg = make_cfg(tmp_path, *overrides)
    metrics = result_metrics(train(cfg))
    assert math.isfinite(metrics["val/fid"]) and metrics["val/fid"] > 0, metrics
    check_run(tmp_path, 2)
    best = OmegaConf.select(cfg, "callbacks.checkpoint.best")
    assert best is None or (tmp_path / "checkpoints" / "best.ckpt").is_file()


# Paper reproductions read data sets this machine lacks: their runs here read the fixtures in the same format (found
# by the data module the experiment composes), with small nets and batches and no image metrics (no feature network
# for the fixtures). Toy experiments run as shipped, metrics included.
ON_DISK = ["data.num_workers=0", "data.size=28"]  # 28: every fixture image is at least that large
FIXTURES = {  # data module -> overrides that point it at its fixture
    "ganlab.data.idx.IdxImages": lambda r: [f"data.root={r['idx']}"],
    "ganlab.data.stacked.Stacked": lambda r: [f"data.root={r['idx']}"],
    "ganlab.data.cifar10.Cifar10": lambda r: [f"data.root={r['cifar']}"],
    "ganlab.data.celeba.CelebA": lambda r: [f"data.root={r['celeba']}", *ON_DISK],
    "ganlab.data.folder.ImageFolder": lambda r: [f"data.path={r['folder']}", *ON_DISK],
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains(tmp_path, idx_root, cifar_root, celeba_root, folder_root, experiment):
    roots = {"idx": idx_root, "cifar": cifar_root, "celeba": celeba_root, "folder": folder_root}
    cfg = make_cfg(tmp_path, f"experiment={experiment}")
    overrides = [f"experiment={experiment}", "iterations=2"]
    if not cfg.data._target_.startswith("ganlab.data.toy."):
        assert cfg.data._target_ in FIXTURES, f"{experiment}: no fixture in {cfg.data._target_}'s format here"
        overrides += [*FIXTURES[cfg.data._target_](roots), *small_nets(cfg), "data.batch_size=8", "metrics=none"]
        if OmegaConf.select(cfg, "callbacks.checkpoint.best"):
            overrides.append("callbacks.checkpoint.best=null")  # it keeps the checkpoint of the lowest val/fid
    result = result_metrics(train(make_cfg(tmp_path, *overrides)))
    rows = read_metrics(tmp_path)
    assert max(r["step"] for r in rows) == 2
    assert all(math.isfinite(v) for k, v in result.items() if k.startswith("train/")), result


def regularizer_overrides(names: list[str]) -> list[str]:
    """regularizer=[names], each applied from the first critic step: a lazy one every step, one that waits
    (LeCam's start) from step 0, so two iterations exercise every penalty."""
    out = [f"regularizer=[{','.join(names)}]"]
    for name in names:
        own = own_settings("regularizer", name)[name]
        out += [f"regularizer.{name}.every=1"] * ("every" in own) + [f"regularizer.{name}.start=0"] * ("start" in own)
    return out


# every loss alone, with each regularizer alone, and with all of them at once
REGULARIZER_SETS = [[]] + [[r] for r in REGULARIZERS] + [REGULARIZERS]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("regularizers", REGULARIZER_SETS, ids=lambda names: f"[{','.join(names)}]")
def test_any_loss_with_any_regularizers(tmp_path, loss, regularizers):
    train(make_cfg(tmp_path, f"loss={loss}", *regularizer_overrides(regularizers), "iterations=2", *SMALL_TOY))
    check_run(tmp_path, 2)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("augment", AUGMENTS)
def test_any_augmentation_with_any_loss(tmp_path, idx_root, augment, loss):
    """An augmentation whose heuristic reads the sign of D's logit (ADA's r_t) trains with a loss that declares
    one (Loss.signed_logit) and refuses the others before training, in one line naming augment.target."""
    cfg = make_cfg(tmp_path, f"augment={augment}", f"loss={loss}", "iterations=2", *small_images(idx_root))
    node = cfg.get("augment")
    reads_sign = bool(node) and "_target_" in node and instantiate(node).reads_logit_sign
    if reads_sign and not get_class(cfg.loss._target_).signed_logit:
        with pytest.raises(ConfigError, match=r"^augment\.target: [^\n]*$"):
            train(cfg)
        assert not (tmp_path / "checkpoints").exists()
        return
    train(cfg)
    check_run(tmp_path, 2)


def test_command_line_loss_wins_over_the_preset(tmp_path):
    cfg = make_cfg(tmp_path, "model=wgan_gp", "loss=hinge", "regularizer=[r1]")
    assert cfg.loss._target_.endswith("Hinge") and set(cfg.regularizer) == {"r1"}
    assert cfg.model.n_critic == 5 and cfg.optim.g.lr == 1e-4  # the rest of the preset stays
    cfg = make_cfg(tmp_path, "model=wgan")
    assert cfg.optim.g._target_ == "torch.optim.RMSprop" and cfg.optim.d.lr == 5e-5
    assert cfg.regularizer.clip.c == 0.01 and cfg.model.n_critic == 5 and cfg.data.batch_size == 64
    # a preset with an objective of its own chooses no loss, and a loss on the command line reaches its check
    # (which refuses it: tests/test_new_loss.py) instead of being dropped by the preset's loss: null
    assert make_cfg(tmp_path, "model=ebgan").loss is None
    assert make_cfg(tmp_path, "model=ebgan", "loss=hinge").loss._target_.endswith("Hinge")


def test_linear_lr_decay_reaches_zero_at_the_end(tmp_path):
    import torch

    train(make_cfg(tmp_path, "model.lr_decay=linear", "iterations=4", *SMALL_TOY))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    lrs = [g["lr"] for opt in ckpt["optimizer_states"] for g in opt["param_groups"]]
    assert len(lrs) == 2 and lrs == [0.0, 0.0]
    assert [s["last_epoch"] for s in ckpt["lr_schedulers"]] == [4, 4]


def test_mlp_nets_on_flat_images(tmp_path, idx_root):
    train(make_cfg(tmp_path, "net=mlp", "iterations=2", "net.g.hidden=32", "net.d.hidden=32",
                   *small_images(idx_root)[:2], "data.batch_size=16"))
    check_run(tmp_path, 2)


@pytest.mark.parametrize("data", ["mnist", "cifar10", "stacked"])
def test_other_image_sets_train(tmp_path, idx_root, cifar_root, data):
    root = cifar_root if data == "cifar10" else idx_root
    train(make_cfg(tmp_path, f"data={data}", f"data.root={root}", "iterations=2", "net.g.ch=8", "net.d.ch=8",
                   "data.batch_size=16"))
    check_run(tmp_path, 2)


@pytest.mark.parametrize("model", ["wgan_gp", "dcgan", "dcgan_fast"])
def test_make_trains_experiment_takes_a_model_from_the_command_line_whole(tmp_path, model):
    """`make train ARGS="model=X"` is `train.py experiment=fmnist_fast model=X`: X's preset as it is (its loss,
    optimizer, EMA, net widths), only the experiment's length, time limit, metric cadence and trainer (trainer=fast)
    on top (the recipe, loss, critic width and R1 included, is model=lsgan_fast)."""
    alone = OmegaConf.to_container(make_cfg(tmp_path, f"model={model}"))
    inside = OmegaConf.to_container(make_cfg(tmp_path, "experiment=fmnist_fast", f"model={model}"))
    for key in ("model", "optim", "loss", "regularizer", "net", "data"):
        assert inside.get(key) == alone.get(key), key
    assert inside["iterations"] == 12000 and inside["metrics"]["every"] == 3000
    assert inside["trainer"]["max_time"] == "00:00:13:30"  # make train within 15 minutes on a slower machine
    assert inside["trainer"]["fast"] and inside["trainer"]["precision"] == "auto"  # the experiment's trainer (bf16
    # where the CPU has bf16 units: tests/test_precision.py)
    recipe = make_cfg(tmp_path, "experiment=fmnist_fast")
    assert recipe.model.ema_decay == 0.999 and recipe.optim.d.lr == 8e-4 and recipe.optim.g.lr == 4e-4
    assert recipe.net.d.ch == 32 and recipe.net.g.ch == 64
    r1 = recipe.regularizer.r1
    assert list(recipe.regularizer) == ["r1"] and r1.weight == 0.3 and r1.every == 16
    assert recipe.net.d.norm == "layer"  # R1 is per sample: a BatchNorm critic is refused with it (config.py)
    assert recipe.loss._target_ == "ganlab.losses.LeastSquares"
    assert (recipe.loss.a, recipe.loss.b, recipe.loss.c) == (0, 1, 1)
    assert recipe.net.g.tail == 16 and recipe.net.d.stem == 0 and recipe.model.reuse_fakes


def test_lsgan_fast_is_dcgan_fast_with_least_squares_the_tail_and_one_g_pass(tmp_path):
    """model=lsgan_fast changes dcgan_fast in three keys only (its loss, G's tail, model.reuse_fakes), so the runs
    that measured dcgan_fast's other choices still describe it."""
    ls = _flat(OmegaConf.to_container(make_cfg(tmp_path, "model=lsgan_fast")))
    dc = _flat(OmegaConf.to_container(make_cfg(tmp_path, "model=dcgan_fast")))
    assert {k for k in ls.keys() | dc.keys() if ls.get(k) != dc.get(k)} == \
        {"loss._target_", "loss.a", "loss.b", "loss.c", "net.g.tail", "model.reuse_fakes"}


def test_fmnist_best_is_make_trains_recipe_for_an_hour(tmp_path):
    """experiment=fmnist_best changes only the length of fmnist_fast's run (and its metric cadence, time bound)."""
    fast = OmegaConf.to_container(make_cfg(tmp_path, "experiment=fmnist_fast"))
    best = OmegaConf.to_container(make_cfg(tmp_path, "experiment=fmnist_best"))
    for key in ("model", "optim", "loss", "regularizer", "net", "data", "augment"):
        assert best.get(key) == fast.get(key), key
    assert best["iterations"] == 50000 and best["metrics"]["every"] == 5000
    assert best["trainer"]["max_time"] == "00:00:58:00"
    assert best["callbacks"]["checkpoint"]["best"] == fast["callbacks"]["checkpoint"]["best"] == "val/fid"
    assert {k: v for k, v in best["trainer"].items() if k != "max_time"} == \
        {k: v for k, v in fast["trainer"].items() if k != "max_time"}
