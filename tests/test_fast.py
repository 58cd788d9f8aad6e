"""The fast step (trainer.fast, fast.py). On a CPU it runs the static step without CUDA graphs: it must train what
the eager step trains (same logged losses, same final weights), check NaN/inf once per logged row, and refuse or
fall back, with one clear message, where it cannot apply. On a GPU (skipped without one) the captured step must
match the eager step at the same precision."""
import math

import pytest
import torch

import ganlab.fast as fast_module
from ganlab.config import ConfigError
from ganlab.divergence import Diverged
from ganlab.losses import Wasserstein
from ganlab.train import train

from .conftest import make_cfg, read_metrics

TOY = ["data=ring8", "net.g.hidden=32", "net.d.hidden=32", "data.batch_size=64"]
LOSSES = ("train/d_loss", "train/g_loss")


def run(tmp_path, name, *overrides):
    out = tmp_path / name
    train(make_cfg(out, *overrides))
    return read_metrics(out), torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same(eager, fast, keys, rel=1e-4, weights=True):
    (rows_e, w_e), (rows_f, w_f) = eager, fast
    assert [r["step"] for r in rows_e] == [r["step"] for r in rows_f]
    for re_, rf in zip(rows_e, rows_f):
        for k in keys:
            assert rf[k] == pytest.approx(re_[k], rel=rel, abs=1e-6), (re_["step"], k)
    for k, v in w_e.items():
        if weights and v.is_floating_point():
            torch.testing.assert_close(w_f[k].contiguous(), v, rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize("overrides, keys", [
    # WGAN-GP (double backward), n_critic 5, an lr schedule and an EMA generator, toy MLPs
    (("model=wgan_gp", "model.lr_decay=linear", "model.ema_decay=0.9"), LOSSES + ("train/gp", "train/wasserstein")),
    # WGAN: RMSprop, weight clipping after every critic step; lazy R1 (two kinds of critic step); spectral norm
    (("model=wgan", "regularizer=[clip,r1]", "regularizer.r1.every=3", "net.d.spectral_norm=true"),
     LOSSES + ("train/r1",)),
    # G's step scores the critic step's fakes (one G forward per iteration)
    (("model=nsgan", "model.reuse_fakes=true", "model.ema_decay=0.9"), LOSSES),
], ids=["wgan_gp_schedule_ema", "wgan_clip_lazy_r1_sn", "reuse_fakes"])
def test_fast_step_trains_what_the_eager_step_trains(tmp_path, overrides, keys):
    args = (*TOY, "iterations=12", *overrides)
    assert_same(run(tmp_path, "eager", *args), run(tmp_path, "fast", *args, "trainer.fast=true"), keys)


def test_fast_step_on_conv_nets_in_channels_last(tmp_path, idx_root, monkeypatch):
    args = ("data=fashion_mnist", f"data.root={idx_root}", "data.size=32", "data.batch_size=16", "net.g.ch=8",
            "net.d.ch=8", "iterations=6", "trainer.log_every_n_steps=2")
    eager, fast = run(tmp_path, "eager", *args), run(tmp_path, "fast", *args, "trainer.fast=true")
    conv = [v for v in fast[1].values() if v.dim() == 4]
    assert conv and all(v.is_contiguous(memory_format=torch.channels_last) for v in conv)
    # channels-last convolutions sum in another order, and Adam turns those ~1e-7 into lr-sized steps: close only
    assert_same(eager, fast, LOSSES, rel=2e-2, weights=False)
    # in the eager layout, the static step is the eager step
    monkeypatch.setattr(fast_module, "channels_last", lambda module: None)
    monkeypatch.setattr(fast_module, "_layout", lambda x: x)
    assert_same(eager, run(tmp_path, "fast_contiguous", *args, "trainer.fast=true"), LOSSES)


def test_a_non_finite_step_stops_the_run_at_the_next_logged_row(tmp_path, monkeypatch):
    calls = iter(range(10**9))
    d = Wasserstein.d
    monkeypatch.setattr(Wasserstein, "d", lambda self, r, f: d(self, r, f) * (math.nan if next(calls) == 13 else 1.0))
    cfg = make_cfg(tmp_path, *TOY, "model=wgan_gp", "iterations=20", "trainer.fast=true",
                   "trainer.log_every_n_steps=4", "callbacks.checkpoint.every=100")
    with pytest.raises(Diverged, match=r"^iteration 4 .*: a step in iterations 1-4 was non-finite \(trainer\.fast "
                                       r"checks once per logged row"):
        train(cfg)  # critic step 14 is in iteration 3 (n_critic 5); the row of iterations 1-4 sees it


@pytest.mark.parametrize("override, message", [
    ("trainer.devices=2", r"trainer\.fast=true runs one device"),
    ("trainer.precision=16-mixed", r"use trainer\.precision=bf16-mixed"),
    ("model.on_nonfinite=skip", r"cannot drop single bad steps: set model\.on_nonfinite=stop"),
])
def test_what_the_fast_step_cannot_run_is_refused_before_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(tmp_path, *TOY, "iterations=2", "trainer.fast=true", "trainer.accelerator=cpu", override))
    assert not (tmp_path / "checkpoints").exists()


def test_steps_that_cannot_be_captured_run_eagerly_with_one_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"trainer\.fast: regularizer\.noise anneals its sigma on the host every "
                                         r"step .*; running the eager step"):
        rows, _ = run(tmp_path, "noise", *TOY, "regularizer=[noise]", "regularizer.noise.anneal_steps=10",
                      "iterations=4", "trainer.fast=true")
    assert rows[-1]["step"] == 4 and all(math.isfinite(r["train/d_loss"]) for r in rows)


def test_models_with_host_side_state_name_it():
    from ganlab.variants.cyclegan import CycleGAN
    from ganlab.variants.sgan import SGAN

    for cls, what in ((CycleGAN, "image pools"), (SGAN, "labelled batches")):
        assert what in cls.not_capturable


def test_reuse_fakes_runs_the_eager_step_on_cuda():
    """A CUDA graph of G's step would replay a backward through activations that the critic's graph overwrites."""
    from types import SimpleNamespace

    from ganlab.steps.fakes import Fakes

    module = SimpleNamespace(not_capturable=None, regularizers={}, augment=None, device=torch.device("cuda"),
                             fakes=Fakes(reuse=True))
    assert "model.reuse_fakes" in fast_module.why_not_captured(module)
    module.device = torch.device("cpu")  # no graphs there: the static step runs, in channels-last
    assert fast_module.why_not_captured(module) is None


def test_trainer_fast_preset_trains(tmp_path):
    """Its precision, auto (bf16 where the hardware has it), is tests/test_precision.py's."""
    cfg = make_cfg(tmp_path, *TOY, "trainer=fast", "iterations=4", "trainer.log_every_n_steps=1")
    assert cfg.trainer.precision == "auto" and cfg.trainer.fast and cfg.trainer.benchmark
    train(cfg)
    rows = read_metrics(tmp_path)
    assert rows[-1]["step"] == 4 and all(math.isfinite(r["train/g_loss"]) for r in rows)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("overrides", [
    ("model=wgan_gp", "data.size=32", "data.batch_size=64", "model.ema_decay=0.999", "model.lr_decay=linear"),
    ("model=dcgan", "data.size=32", "data.batch_size=64", "regularizer=[r1]", "regularizer.r1.every=4",
     "net.d.norm=none"),
], ids=["wgan_gp", "dcgan_lazy_r1"])
def test_captured_step_matches_the_eager_step_on_gpu(tmp_path, idx_root, overrides):
    args = ("trainer.accelerator=gpu", "trainer.precision=bf16-mixed", f"data.root={idx_root}", "iterations=30",
            "trainer.log_every_n_steps=5", *overrides)
    eager, fast = run(tmp_path, "eager", *args), run(tmp_path, "fast", *args, "trainer=fast")
    # bf16 both sides; the graphs replay the same kernels on the same random stream, so the rows agree closely
    for re_, rf in zip(eager[0], fast[0]):
        for k in LOSSES:
            assert rf[k] == pytest.approx(re_[k], rel=5e-2, abs=5e-2), (re_["step"], k)


def test_a_fast_runs_checkpoint_resumes_in_any_run():
    """A capturable optimizer saves tensor learning rates, which a non-capturable one on a GPU cannot step with:
    fast runs save them as any run does."""
    from ganlab.fast import portable

    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.1), foreach=False)
    p.grad = torch.ones(3)
    opt.step()
    state = opt.state_dict()
    state["param_groups"][0]["capturable"] = True
    checkpoint = {"optimizer_states": [state]}
    portable(checkpoint)
    group = checkpoint["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.1) and isinstance(group["lr"], float) and group["capturable"] is False
    again = torch.optim.Adam([p], lr=1.0)
    again.load_state_dict(checkpoint["optimizer_states"][0])
    again.step()
    assert again.param_groups[0]["lr"] == pytest.approx(0.1) and int(again.state[p]["step"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["acgan", "infogan", "began", "ebgan", "biggan_small"])
def test_variants_keep_their_state_in_tensors_so_the_static_step_matches(tmp_path, idx_root, preset, monkeypatch):
    """The variants the fast step captures (no capture_blocker): their static step is their eager step (BEGAN's
    k_t, InfoGAN's codes, AC-GAN's classes, BigGAN's EMA), in the eager layout."""
    from .test_presets import preset_overrides

    monkeypatch.setattr(fast_module, "channels_last", lambda module: None)
    monkeypatch.setattr(fast_module, "_layout", lambda x: x)
    args = (f"model={preset}", *preset_overrides(preset, "images", idx_root), "iterations=4")
    eager, fast = run(tmp_path, "eager", *args), run(tmp_path, "fast", *args, "trainer.fast=true")
    keys = [k for k in eager[0][-1] if k.startswith("train/")]
    assert "train/d_loss" in keys
    assert_same(eager, fast, keys)
