"""Bad input: one clear error naming the key and the fix, raised before any training starts."""
import subprocess
import sys
from pathlib import Path

import pytest

from ganlab.config import ConfigError
from ganlab.train import train

from ..conftest import make_cfg

ROOT = Path(__file__).resolve().parents[2]
TOY = ["data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=2"]

BAD = [
    (["model.n_critic=0"], r"model\.n_critic must be >= 1.*e\.g\. model\.n_critic=5"),
    (["model.n_critic=five"], r"model\.n_critic must be a number, got 'five'"),
    (["optim.g.lr=0"], r"optim\.g\.lr must be > 0.*optim\.g\.lr=2e-4"),
    (["optim.g.betas=[0.5,1.5]"], r"optim\.g: Invalid beta parameter at index 1"),
    (["model.lr_decay=cosine"], r"model: lr_decay must be 'none' or 'linear'"),
    (["optim.d.lr=-1e-4"], r"optim\.d\.lr must be > 0"),
    (["model=wgan", "regularizer.clip.c=0"], r"regularizer\.clip\.c must be > 0.*regularizer\.clip\.c=0\.01"),
    (["model=wgan_gp", "regularizer.gp.weight=-1"], r"regularizer\.gp\.weight must be >= 0"),
    (["model=wgan_gp", "regularizer.gp.every=0"], r"regularizer\.gp\.every must be >= 1"),
    (["iterations=0"], r"iterations must be >= 1"),
    (["data.batch_size=0"], r"data\.batch_size must be >= 1"),
    (["+model.foo=1"], r"unknown key model\.foo"),
    (["+net.d.widht=3"], r"unknown key net\.d\.widht"),
    (["model=wgan_gp", "net.d.norm=batch"], r"regularizer\.gp .*BatchNorm.*net\.d\.norm=layer"),
    (["net.d.norm=weird"], r"net\.d: norm must be one of"),
    (["data.sigma=0", "data=gauss1d"], r"data\.sigma must be > 0, got 0.*positive value"),
    (["data=grid25", "data.std=-0.05"], r"data\.std must be > 0, got -0\.05"),
    (["data=ring8", "data.radius=0"], r"data\.radius must be > 0"),
    (["ckpt_path=/nonexistent/last.ckpt"], r"ckpt_path: no checkpoint at /nonexistent/last\.ckpt"),
    (["iterations=abc"], r"iterations must be a number, got 'abc'"),
    (["iterations=2.5"], r"iterations must be a whole number, got 2\.5"),
    (["data.batch_size=2.5"], r"data\.batch_size must be a whole number, got 2\.5"),
    (["model.ema_decay=1.5"], r"model\.ema_decay must be in \(0, 1\), got 1\.5: e\.g\. model\.ema_decay=0\.999"),
    (["model.ema_decay=0"], r"model\.ema_decay must be in \(0, 1\), got 0.*model\.ema_decay=null"),
    (["seed=abc"], r"seed must be a number, got 'abc'"),
    (["seed=-1"], r"seed must be >= 0, got -1"),
    (["seed=1.5"], r"seed must be a whole number, got 1\.5"),
    (["net.g.z_dim=0"], r"net\.g\.z_dim must be >= 1, got 0: the latent size"),
    (["regularizer=[noise]", "regularizer.noise.sigma=-1"], r"regularizer\.noise: sigma must be >= 0"),
    (["regularizer=[r1]", "regularizer.r1.weight=-2"], r"regularizer\.r1\.weight must be >= 0"),
    (["metrics=default", "metrics.features=vgg"], r"metrics: metrics\.features must be one of auto, inception, "
                                                   r"classifier, got 'vgg'"),
    (["metrics=default", "metrics.every=0"], r"metrics: metrics\.every must be >= 1"),
    (["metrics=default", "metrics.n=1"], r"metrics: metrics\.n and metrics\.toy_n must be >= 2"),
    (["callbacks.checkpoint.every=0"], r"callbacks\.checkpoint: every must be >= 1"),
    (["optim.g._target_=torch.optim.Adamm"], r"optim\.g: .*Adamm"),
    (["data=folder"], r"data\.path has no value: set it on the command line \(data\.path=\.\.\.\)"),
    (["data=folder", "data.path=/nonexistent/pics"], r"no folder /nonexistent/pics: set data\.path=DIR"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_fails_before_training(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        base = TOY if not any(o.startswith("data=") for o in overrides) else ["iterations=2"]
        train(make_cfg(tmp_path, *base, *overrides))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "csv").exists()


def test_image_size_the_net_cannot_make(tmp_path, idx_root):
    with pytest.raises(ConfigError, match=r"net\.g: DCGAN supports image sizes \(28, 32, 64, 128\), got 48"):
        train(make_cfg(tmp_path, f"data.root={idx_root}", "data.size=48"))


def test_more_samples_than_real_images(tmp_path, idx_root, fixture_classifier):
    """metrics.n beyond the real set would score n samples against fewer real images without a word."""
    with pytest.raises(ConfigError, match=r"metrics: metrics\.n=300 is more than the 256 real images this data "
                                          r"set has \(IdxImages, train split\).*set metrics\.n <= 256"):
        train(make_cfg(tmp_path, f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "iterations=2", "metrics=default",
                       "metrics.features=classifier", "metrics.n=300"))
    assert not (tmp_path / "checkpoints").exists()


def test_missing_data_files_name_the_path_and_the_package(tmp_path):
    with pytest.raises(ConfigError, match=r"missing data file /nonexistent/fmnist/train-images-idx3-ubyte\[\.gz\]"
                                          r".*apt-get install dataset-fashion-mnist.*data\.root="):
        train(make_cfg(tmp_path, "data.root=/nonexistent/fmnist"))


def run_cli(*args):
    return subprocess.run([sys.executable, "train.py", *args, "hydra.run.dir=/tmp/ganlab-cli-test"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["model=foo"], "Could not find 'model/foo'"),  # unknown group option: Hydra lists the available ones
    (["model.foo=1"], "Could not override 'model.foo'"),  # unknown key: Hydra names it and the + syntax
    (["data=grid25", "model.n_critic=0"], "ganlab: config error: model.n_critic must be >= 1"),
    (["data.root=/nonexistent"], "ganlab: config error: data: missing data file /nonexistent/train-images"),
])
def test_cli_prints_one_clear_error_without_a_traceback(args, message):
    r = run_cli(*args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    if "model=foo" in args:
        assert "wgan_gp" in r.stderr  # the available options are listed
