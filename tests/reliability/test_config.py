"""Bad input: one clear error naming the key and the fix, raised before any training starts."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ganlab.config import ConfigError, check_config
from ganlab.train import CONF_DIR, train
from ganlab.train_classifier import train_classifier

from .. import conftest, launcher
from ..conftest import make_cfg
from ..test_presets import EXPERIMENTS, PRESETS

ROOT = Path(__file__).resolve().parents[2]
TOY = ["data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=2"]

BAD = [
    (["model.n_critic=0"], r"model\.n_critic must be >= 1.*e\.g\. model\.n_critic=5"),
    (["model.n_critic=five"], r"model\.n_critic must be a number, got 'five'"),
    (["optim.g.lr=0"], r"optim\.g\.lr must be > 0.*optim\.g\.lr=2e-4"),
    (["optim.g.betas=[0.5,1.5]"], r"optim\.g\.betas: Invalid beta parameter at index 1"),
    (["model.lr_decay=cosine"], r"model\.lr_decay must be 'none' or 'linear'"),
    (["optim.d.lr=-1e-4"], r"optim\.d\.lr must be > 0"),
    (["model=wgan", "regularizer.clip.c=0"], r"regularizer\.clip\.c must be > 0.*regularizer\.clip\.c=0\.01"),
    (["model=wgan_gp", "regularizer.gp.weight=-1"], r"regularizer\.gp\.weight must be >= 0"),
    (["model=wgan_gp", "regularizer.gp.every=0"], r"regularizer\.gp\.every must be >= 1"),
    (["iterations=0"], r"iterations must be >= 1"),
    (["data.batch_size=0"], r"data\.batch_size must be >= 1"),
    (["+model.foo=1"], r"unknown key model\.foo"),
    (["+net.d.widht=3"], r"unknown key net\.d\.widht"),
    (["model=wgan_gp", "net.d.norm=batch"], r"regularizer\.gp .*BatchNorm.*net\.d\.norm=layer"),
    (["net.d.norm=weird"], r"net\.d\.norm must be one of"),
    (["data.sigma=0", "data=gauss1d"], r"data\.sigma must be > 0, got 0.*positive value"),
    (["data=grid25", "data.std=-0.05"], r"data\.std must be > 0, got -0\.05"),
    (["data=ring8", "data.radius=0"], r"data\.radius must be > 0"),
    (["data=grid25", "data.spacing=0"], r"data\.spacing must be > 0, got 0.*positive value"),
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
    (["regularizer=[noise]", "regularizer.noise.sigma=-1"], r"regularizer\.noise\.sigma must be >= 0"),
    (["regularizer=[r1]", "regularizer.r1.weight=-2"], r"regularizer\.r1\.weight must be >= 0"),
    # a preset's settings for a regularizer the list leaves out (dcgan_fast tunes R1's weight), or no settings at all
    (["model=dcgan_fast", "regularizer=[]"], r"^regularizer\.r1 holds settings \(weight=0\.3\) but regularizer=\[\.\.\.\] does "
                                               r"not choose r1: add it .* or drop its settings too \(~regularizer\.r1\)"),
    (["regularizer=[r1]", "regularizer.r1=5"], r"^regularizer\.r1 holds settings \(5\) but"),
    (["metrics=default", "metrics.features=vgg"], r"^metrics\.features must be one of auto, inception, "
                                                   r"classifier, got 'vgg'"),
    (["metrics=default", "metrics.every=0"], r"^metrics\.every must be >= 1"),
    (["metrics=default", "metrics.n=1"], r"^metrics\.n and metrics\.toy_n must be >= 2"),
    (["callbacks.checkpoint.every=0"], r"callbacks\.checkpoint\.every must be >= 1"),
    (["optim.g._target_=torch.optim.Adamm"], r"optim\.g: .*Adamm"),
    (["data=folder"], r"data\.path has no value: set it on the command line \(data\.path=\.\.\.\)"),
    (["data=folder", "data.path=/nonexistent/pics"], r"no folder /nonexistent/pics: set data\.path=DIR"),
    # every numeric and enum key of conf/, the way a new user gets them wrong: the message leads with the full key.
    # Types come from the constructors' annotations (config.check_types), before anything is built ...
    (["model.max_skips=2.5"], r"^model\.max_skips must be a whole number, got 2\.5: e\.g\. model\.max_skips=100"),
    (["model.feature_matching=maybe"], r"^model\.feature_matching must be true or false, got 'maybe'"),
    (["net.d.spectral_norm=maybe"], r"^net\.d\.spectral_norm must be true or false, got 'maybe'"),
    (["net.g.z_dim=null"], r"^net\.g\.z_dim must be a number, got None"),
    (["loss=lsgan", "loss.a=abc"], r"^loss\.a must be a number, got 'abc'"),
    (["data=grid25", "data.side=2.5"], r"^data\.side must be a whole number, got 2\.5"),
    (["data=gauss1d", "data.mu=abc"], r"^data\.mu must be a number, got 'abc'"),
    (["data=fashion_mnist", "data.download=maybe"], r"^data\.download must be true or false"),
    (["trainer.precision=17"], r"^trainer\.precision must be one of .*bf16-mixed.*, auto, got 17"),
    (["trainer.sync_batchnorm=maybe"], r"^trainer\.sync_batchnorm must be true or false"),
    (["trainer.fast=maybe"], r"^trainer\.fast must be true or false, got 'maybe'"),
    (["callbacks.samples.every=2.5"], r"^callbacks\.samples\.every must be a whole number, got 2\.5"),
    (["callbacks.checkpoint.keep=maybe"], r"^callbacks\.checkpoint\.keep must be true or false"),
    (["metrics=default", "metrics.k=abc"], r"^metrics\.k must be a number, got 'abc'"),
    (["metrics=default", "metrics.min_count=1.5"], r"^metrics\.min_count must be a whole number, got 1\.5"),
    (["optim.g.betas=abc"], r"^optim\.g\.betas must be a list of 2 numbers, got 'abc'"),
    # nan and inf pass every `>= low` test, so they are refused wherever they appear, lists included
    (["model=dcgan_fast", "regularizer.r1.weight=nan"], r"^regularizer\.r1\.weight must be a finite number, got nan"),
    (["model=dcgan_fast", "regularizer.r1.weight=inf"], r"^regularizer\.r1\.weight must be a finite number, got inf"),
    (["model=ebgan", "model.lambda_pt=-inf"], r"^model\.lambda_pt must be a finite number, got -inf"),
    (["optim.g.betas=[0.5,nan]"], r"^optim\.g\.betas\[1\] must be a finite number, got nan"),
    (["regularizer=[noise]", "regularizer.noise.anneal_steps=2.5"], r"^regularizer\.noise\.anneal_steps must be a whole"),
    (["regularizer=[gp]", "regularizer.gp.one_sided=maybe"], r"^regularizer\.gp\.one_sided must be true or false"),
    (["model=ebgan", "model.lambda_pt=abc"], r"^model\.lambda_pt must be a number, got 'abc': e\.g\. model\.lambda_pt=0\.1"),
    (["model=infogan", "model.categorical=2.5"], r"^model\.categorical must be a whole number, got 2\.5"),
    (["model=cyclegan", "data=sneaker2boot", "model.gan_weight=abc"], r"^model\.gan_weight must be a number"),
    (["model=cyclegan", "data=sneaker2boot", "loss=rpgan"], r"^loss=rpgan pairs each fake.*use loss=lsgan"),
    (["regularizer=[lecam]", "regularizer.lecam.decay=1.5"], r"regularizer\.lecam\.decay must be in \[0, 1\)"),
    (["regularizer=[lecam]", "regularizer.lecam.start=-1"], r"regularizer\.lecam\.start must be >= 0"),
    # ... ranges (config.RANGES) ...
    (["net.g.hidden=0"], r"^net\.g\.hidden must be >= 1, got 0: a layer width"),
    (["net.d.depth=-1"], r"^net\.d\.depth must be >= 0, got -1: hidden layers"),
    (["data=ring8", "data.n=0"], r"^data\.n must be >= 1, got 0: modes on the ring"),
    (["data=swissroll", "data.noise=-1"], r"^data\.noise must be >= 0, got -1"),
    (["data=fashion_mnist", "data.size=0"], r"^data\.size must be >= 1, got 0"),
    (["trainer.log_every_n_steps=0"], r"^trainer\.log_every_n_steps must be >= 1, got 0: iterations between logged rows"),
    (["callbacks.samples.n=0"], r"^callbacks\.samples\.n must be >= 1, got 0"),
    (["callbacks.diverged.n=0"], r"^callbacks\.diverged\.n must be >= 1, got 0"),
    (["metrics=default", "metrics.kid_subset=0"], r"^metrics\.kid_subset must be >= 2, got 0"),
    (["metrics=default", "metrics.min_count=0"], r"^metrics\.min_count must be >= 1, got 0"),
    (["optim=rmsprop", "+optim.g.alpha=1.5"], r"^optim\.g\.alpha must be in \[0, 1\), got 1\.5: RMSProp's smoothing"),
    # ... and the constructors' own checks, led by the full key of the value they refuse
    (["+optim.g.eps=-1"], r"^optim\.g\.eps: Invalid epsilon value: -1"),
    (["net.d.minibatch=foo"], r"^net\.d\.minibatch must be one of \('none', 'std', 'discrimination'\), got 'foo'"),
    (["net=autoencoder", "net.d.distance=l3"], r"^net\.d\.distance must be one of \('l1', 'l2'\)"),
    (["model.on_nonfinite=ignore"], r"^model\.on_nonfinite must be 'stop' or 'skip'"),
    (["trainer.devices=0"], r"^trainer\.devices must be a whole number >= 1 \(devices per node\), -1 \(all\) or auto, got 0"),
    (["trainer.accelerator=foo"], r"^trainer\.accelerator must be one of auto, gpu, cpu, cuda, mps, tpu, got 'foo'"),
    (["model=began", "model.gamma=0"], r"^model\.gamma must be in \(0, 1\]"),
    (["model=infogan", "model.lambda_cont=-1"], r"^model\.lambda_cat and model\.lambda_cont must be >= 0"),
    (["data=sneaker2boot", "data.held_out=foo"], r"^data\.held_out must be 'train' or 't10k'"),
]

# Values a check could refuse by being too strict: every preset and experiment (tests/test_presets.py trains them),
# and values of the right kind given another way than the defaults.
GOOD = [
    ["model.ema_decay=null"], ["trainer.precision=16"], ["trainer.precision=bf16-mixed"], ["trainer.devices=auto"],
    ["optim.g.betas=[0,0.9]"], ["optim.g.lr=1"], ["data=grid25", "net.g.depth=0"], ["net.g.z_dim=2.0"], ["data.batch_size=2", "model.pack=2"],
    ["regularizer=[noise]", "regularizer.noise.anneal_steps=0"], ["regularizer=[gp]", "regularizer.gp.weight=0"],
    ["model=ebgan", "model.lambda_pt=0"], ["model=infogan", "model.categorical=0"], ["optim=rmsprop", "+optim.g.alpha=0"],
    ["data=fashion_mnist", "data.labelled=null"], ["data=fashion_mnist", "data.labelled=5"],
    ["metrics=default", "metrics.k=2"], ["model=dcgan_fast", "regularizer=[]", "~regularizer.r1"], ["trainer=fast"], ["trainer.precision=auto"], ["model.on_nonfinite=skip"],
    *[[f"model={p}"] for p in PRESETS], *[[f"experiment={e}"] for e in EXPERIMENTS],
]


def test_the_suite_composes_the_config_folder_that_train_py_reads():
    assert conftest.CONF_DIR == CONF_DIR


@pytest.mark.parametrize("overrides", GOOD, ids=[" ".join(o) for o in GOOD])
def test_good_values_pass_the_checks(tmp_path, overrides):
    check_config(make_cfg(tmp_path, *overrides))


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_fails_before_training(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        base = TOY if not any(o.startswith("data=") for o in overrides) else ["iterations=2"]
        train(make_cfg(tmp_path, *base, *overrides))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "csv").exists()


def test_every_batchnorm_class_of_torch_is_one_the_checks_know():
    """config.check_critic and the EMA generator name BatchNorm by a tuple of public classes (nets/layers.py): a
    BatchNorm class torch adds must join it (this compares with torch's private base class, in this test only)."""
    from torch import nn
    from ganlab.nets.layers import BATCHNORMS
    torchs = {c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, nn.modules.batchnorm._BatchNorm)}
    assert torchs and torchs <= set(BATCHNORMS)


@pytest.mark.parametrize("norm", ["BatchNorm2d", "SyncBatchNorm", "LazyBatchNorm2d"])
def test_a_penalty_is_refused_with_any_batchnorm_in_the_critic(norm):
    from torch import nn
    from ganlab.config import check_critic
    from ganlab.regularizers import R1
    layer = getattr(nn, norm)() if norm.startswith("Lazy") else getattr(nn, norm)(4)
    critic = nn.Sequential(nn.Conv2d(1, 4, 3), layer)
    with pytest.raises(ConfigError, match=r"regularizer\.r1 penalises per-sample input gradients.*BatchNorm"):
        check_critic(critic, {"r1": R1()})
    check_critic(nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(1, 4)), {"r1": R1()})  # LayerNorm-like: allowed


def test_image_size_the_net_cannot_make(tmp_path, idx_root):
    with pytest.raises(ConfigError, match=r"net\.g: DCGAN supports image sizes \(28, 32, 64, 128\), got 48"):
        train(make_cfg(tmp_path, f"data.root={idx_root}", "data.size=48"))


@pytest.mark.slow
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
    return launcher.run("train.py", *args, "hydra.run.dir=/tmp/ganlab-cli-test", timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["model=foo"], "Could not find 'model/foo'"),  # unknown group option: Hydra lists the available ones
    (["model.foo=1"], "Could not override 'model.foo'"),  # unknown key: Hydra names it and the + syntax
    (["data=grid25", "model.n_critic=0"], "ganlab: config error: model.n_critic must be >= 1"),
    (["data.root=/nonexistent"], "ganlab: config error: data: missing data file /nonexistent/train-images"),
    (["data=grid25", "seed=abc"], "ganlab: config error: seed must be a number, got 'abc'"),  # was a traceback
    (["data=grid25", "net.d.norm=foo", "optimized_metric=train/gp"],  # one error: the first, the objective's
     "ganlab: config error: optimized_metric=train/gp: a run of this config never logs it"),
])
def test_cli_prints_one_clear_error_without_a_traceback(args, message):
    r = run_cli(*args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("ganlab: config error:") == message.startswith("ganlab: config error:")  # one line
    if "model=foo" in args:
        assert "wgan_gp" in r.stderr  # the available options are listed


@pytest.mark.parametrize("override, message", [
    ("epochs=0", r"^epochs must be >= 1, got 0: e\.g\. epochs=3"),  # was OneCycleLR's traceback
    ("epochs=1.5", r"^epochs must be a whole number, got 1\.5"),
    ("lr=nan", r"^lr must be a finite number, got nan"),
    ("lr=0", r"^lr must be > 0, got 0"),
    ("batch_size=abc", r"^batch_size must be a number, got 'abc'"),
    ("batch_size=100000", r"^batch_size=100000 is larger than the 256 training images"),  # after reading the data
])
def test_bad_classifier_settings_fail_before_training(tmp_path, idx_root, override, message):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("classifier", overrides=[f"data.root={idx_root}", f"out={tmp_path}/c.pt", override])
    with pytest.raises(ConfigError, match=message):
        train_classifier(cfg)
    assert not (tmp_path / "c.pt").exists()
