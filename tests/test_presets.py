"""Every preset and every experiment trains a few steps, on toy data and on images."""
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ganlab.config import ConfigError
from ganlab.sampling import generate, load_generator
from ganlab.train import CONF_DIR, train

from .conftest import make_cfg, read_metrics

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
SMALL_TOY = ["data=grid25", "net.g.hidden=32", "net.d.hidden=32"]


def small_images(idx_root):
    return ["data=fashion_mnist", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16"]


def check_run(out: Path, iterations: int):
    rows = read_metrics(out)
    assert max(r["step"] for r in rows) == iterations  # step = generator iterations
    for key in ("train/d_loss", "train/g_loss"):
        values = [r[key] for r in rows if key in r]
        assert values and all(math.isfinite(v) for v in values), key
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "samples").glob("iter_*.png"))


def _flat(node, prefix=""):
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


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


# Presets that cannot run on toy data (class labels, image-to-image nets, DCGAN net widths) run on images only, some
# with data and nets of their own, small.
IMAGES_ONLY = {"cgan", "acgan", "sgan", "biggan_small", "cyclegan", "dcgan_fast"}
TOY_NETS = {"sngan": ["net=mlp"], "r3gan": ["net=mlp"]}  # presets whose own nets are convolutional: MLPs on toy points
OWN_IMAGES = {
    "cyclegan": lambda root: ["data=sneaker2boot", f"data.root={root}", "net.g.ch=8", "net.g.blocks=2", "net.d.ch=8",
                              "net.d.layers=2", "data.batch_size=16", "callbacks.translations.cycle_n=8"],
}


def preset_overrides(preset: str, data: str, idx_root) -> list[str]:
    if data == "toy":
        return TOY_NETS.get(preset, []) + SMALL_TOY
    return OWN_IMAGES[preset](idx_root) if preset in OWN_IMAGES else small_images(idx_root)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("data", ["toy", "images"])
def test_preset_trains_resumes_and_samples(tmp_path, idx_root, preset, data):
    if data == "toy" and preset in IMAGES_ONLY:
        pytest.skip(f"{preset} needs images of its own kind")
    overrides = [f"model={preset}", *preset_overrides(preset, data, idx_root)]
    train(make_cfg(tmp_path / "a", *overrides, "iterations=2"))
    check_run(tmp_path / "a", 2)
    train(make_cfg(tmp_path / "b", *overrides, "iterations=3", f"ckpt_path={tmp_path}/a/checkpoints/last.ckpt"))
    assert [r["step"] for r in read_metrics(tmp_path / "b") if "train/d_loss" in r] == [3]  # went on from 2
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    if preset == "cyclegan":  # a translator draws nothing from noise: sample.py says so, in one line
        with pytest.raises(ConfigError, match="holds an image translator"):
            load_generator(last)
        return
    g, run = load_generator(last)
    assert run["iteration"] == 3
    x = generate(g, 5)
    assert x.shape[0] == 5 and torch.isfinite(x).all()


# Paper reproductions read data sets this machine lacks: their runs here read the fixtures in the same format, with
# small nets and batches and no image metrics (no feature network for the fixtures). Toy experiments run as shipped.
SMALL_CONV = ["net.g.ch=8", "net.d.ch=8", "data.batch_size=8", "metrics=none"]
ON_DISK = ["data.num_workers=0", "data.size=28"]  # 28: every fixture image is at least that large
EXPERIMENT_DATA = {
    "gan_mnist": lambda d: [f"data.root={d['idx']}", "net.g.hidden=32", "net.d.hidden=32", "data.batch_size=16",
                            "metrics=none"],
    "dcgan_celeba": lambda d: [f"data.root={d['celeba']}", *ON_DISK, *SMALL_CONV],
    "began_celeba": lambda d: [f"data.root={d['celeba']}", *ON_DISK, *SMALL_CONV],
    "lsgan_lsun": lambda d: [f"data.path={d['folder']}", *ON_DISK, *SMALL_CONV],
    "wgan_lsun": lambda d: [f"data.path={d['folder']}", *ON_DISK, *SMALL_CONV],
    "wgan_gp_cifar10": lambda d: [f"data.root={d['cifar']}", *SMALL_CONV],
    "sngan_cifar10": lambda d: [f"data.root={d['cifar']}", *SMALL_CONV],
    "fmnist_fast": lambda d: [f"data.root={d['idx']}", *SMALL_CONV, "callbacks.checkpoint.best=null"],  # no val/fid
    "fmnist_best": lambda d: [f"data.root={d['idx']}", *SMALL_CONV, "callbacks.checkpoint.best=null"],
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains(tmp_path, idx_root, cifar_root, celeba_root, folder_root, experiment):
    roots = {"idx": idx_root, "cifar": cifar_root, "celeba": celeba_root, "folder": folder_root}
    overrides = EXPERIMENT_DATA[experiment](roots) if experiment in EXPERIMENT_DATA else []
    train(make_cfg(tmp_path, f"experiment={experiment}", "iterations=2", *overrides))
    rows = read_metrics(tmp_path)
    assert max(r["step"] for r in rows) == 2


@pytest.mark.parametrize("loss", ["minimax", "ns", "lsgan", "wgan", "hinge"])
@pytest.mark.parametrize("regularizer", ["[]", "[gp]", "[r1]", "[clip]", "[noise]", "[gp,r1,noise]"])
def test_any_loss_with_any_regularizers(tmp_path, loss, regularizer):
    train(make_cfg(tmp_path, f"loss={loss}", f"regularizer={regularizer}", "iterations=2",
                   "regularizer.r1.every=1" if "r1" in regularizer else "seed=0", *SMALL_TOY))
    check_run(tmp_path, 2)


def test_command_line_loss_wins_over_the_preset(tmp_path):
    cfg = make_cfg(tmp_path, "model=wgan_gp", "loss=hinge", "regularizer=[r1]")
    assert cfg.loss._target_.endswith("Hinge") and set(cfg.regularizer) == {"r1"}
    assert cfg.model.n_critic == 5 and cfg.optim.g.lr == 1e-4  # the rest of the preset stays
    cfg = make_cfg(tmp_path, "model=wgan")
    assert cfg.optim.g._target_ == "torch.optim.RMSprop" and cfg.optim.d.lr == 5e-5
    assert cfg.regularizer.clip.c == 0.01 and cfg.model.n_critic == 5 and cfg.data.batch_size == 64


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


@pytest.mark.parametrize("model", ["wgan_gp", "dcgan"])
def test_make_trains_experiment_takes_a_model_from_the_command_line_whole(tmp_path, model):
    """`make train ARGS="model=X"` is `train.py experiment=fmnist_fast model=X`: X's preset as it is (its loss,
    optimizer, EMA, net widths), only the experiment's length, time limit, metric cadence and trainer (trainer=fast)
    on top (the recipe, critic width and R1 included, is model=dcgan_fast)."""
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
