"""fp16 mixed precision (16-mixed: autocast to float16 and a GradScaler), on the CPU: the gradient penalties take
their inner gradient of scaled outputs (no underflow), an overflowing scaled penalty lowers the loss scale instead
of stopping the run, and a real divergence still stops it once the scale is spent, pointing to bf16."""
import math
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

from ganlab.divergence import Diverged
from ganlab.module import GANModule
from ganlab.regularizers import R1, GradientPenalty, _grad_norm
from ganlab.train import train

from .conftest import make_cfg, read_metrics

TOY = ["data=grid25", "net.g.hidden=16", "net.d.hidden=16", "data.batch_size=64"]  # n_critic = 1
WGAN_GP = ["model=wgan_gp", "data=ring8", "net.g.hidden=16", "net.d.hidden=16"]  # n_critic = 5
FP16 = ["trainer._target_=tests.test_amp.FP16Trainer", "trainer.precision=null"]


class FP16Trainer(L.Trainer):
    """lightning.Trainer in fp16 on the CPU, where precision=16-mixed would give bf16: MixedPrecision("16-mixed")
    with a CPU GradScaler starting at `init_scale` (GradScaler's default 2^16 unless a test sets it)."""

    init_scale = 2.0**16

    def __init__(self, *args, plugins=(), **kwargs):
        scaler = torch.amp.GradScaler("cpu", init_scale=self.init_scale)
        super().__init__(*args, plugins=[*plugins, MixedPrecision("16-mixed", "cpu", scaler)], **kwargs)


class Tracked(GANModule):
    """Keeps the last module built (tests read its counters), its critic's initial weights, and with `nan_at`
    fills a critic weight with NaN before that critic step (as an update that blew up would)."""

    last: "Tracked | None" = None
    nan_at: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.d_init = {k: v.clone() for k, v in self.discriminator.state_dict().items()}
        self.scale_at_nan = None
        Tracked.last = self

    def training_step(self, batch, batch_idx):
        if self.d_steps == self.nan_at:
            with torch.no_grad():
                next(self.discriminator.parameters()).view(-1)[0] = math.nan
            self.scale_at_nan = self.trainer.precision_plugin.scaler.get_scale()
        super().training_step(batch, batch_idx)


@pytest.fixture
def tracked(monkeypatch):
    monkeypatch.setattr(Tracked, "last", None)
    return ["model._target_=tests.test_amp.Tracked"]


# ---- the scaled recipe -----------------------------------------------------------------------------------------
class TinyCritic(nn.Module):
    """D(x) = v (w.x + b): its input gradient v w is ~2e-8 per element, under half of fp16's smallest subnormal
    (6e-8), so fp16 rounds it to 0; v and w are exact in fp16, so scaled fp16 and fp32 agree to rounding."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 1), nn.Linear(1, 1)
        with torch.no_grad():
            self.a.weight.copy_(2.0**-13 * torch.tensor([[1.0, 1.25, 1.5, 1.75]]))
            self.b.weight.fill_(2.0**-13)

    def forward(self, x, y=None):
        return {"logits": self.b(self.a(x)).squeeze(1)}


def fp16():
    return torch.autocast("cpu", dtype=torch.float16)


def test_scaled_penalties_do_not_underflow_in_fp16():
    critic, g = TinyCritic(), torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
    ref = _grad_norm(critic, real)  # fp32: ||v w|| = 4.2e-8 for every sample
    r1 = R1(10.0).penalty(critic, real, fake, 0).item()
    assert ref.min().item() > 4e-8 and r1 > 0
    with fp16():
        assert torch.equal(_grad_norm(critic, real), torch.zeros(16))  # the trap: unscaled, the gradient is 0
        assert R1(10.0).penalty(critic, real, fake, 0).item() == 0.0
        scaled = _grad_norm(critic, real, scaler)
        assert scaled.dtype == torch.float32
        torch.testing.assert_close(scaled, ref, rtol=1e-6, atol=0)
        assert R1(10.0).penalty(critic, real, fake, 0, scaler=scaler).item() == pytest.approx(r1, rel=1e-6)
        assert _grad_norm(critic, real, torch.amp.GradScaler("cpu")).isinf().all()  # 2^16: over fp16's max 65504


def test_scaled_gradient_penalty_pulls_on_the_critic_like_fp32():
    """GP's value is ~lambda whatever tiny gradient D has; what the recipe saves is its gradient on D's weights
    (zero when the inner gradient underflows), here through a scaled outer backward as training does it."""
    critic, g = TinyCritic(), torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    weights = (critic.a.weight, critic.b.weight)

    def pull(scaler=None, autocast=False):
        critic.zero_grad()
        torch.manual_seed(0)  # the same interpolates
        with torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
            gp = GradientPenalty(10.0).penalty(critic, real, fake, 0, scaler=scaler)
        outer = torch.amp.GradScaler("cpu", init_scale=2.0**14)
        outer.scale(gp).backward()
        return gp.item(), [w.grad / outer.get_scale() for w in weights]

    gp32, ref = pull()
    gp16, unscaled = pull(autocast=True)
    assert gp16 == pytest.approx(gp32, rel=1e-6) and all(torch.equal(u, torch.zeros_like(u)) for u in unscaled)
    gp16, scaled = pull(torch.amp.GradScaler("cpu", init_scale=2.0**14), autocast=True)
    assert gp16 == pytest.approx(gp32, rel=1e-6)
    for s, r in zip(scaled, ref):
        assert r.abs().min() > 1e-4
        torch.testing.assert_close(s, r, rtol=1e-3, atol=0)


# ---- training in fp16 ------------------------------------------------------------------------------------------
def test_wgan_gp_trains_in_fp16_and_logs_the_loss_scale(tmp_path, tracked):
    metrics = train(make_cfg(tmp_path, *WGAN_GP, *FP16, *tracked, "iterations=8")).metrics
    m = Tracked.last
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(math.isfinite(v) for r in rows for v in r.values())
    assert all({"train/d_loss", "train/g_loss", "train/gp", "train/loss_scale"} <= set(r) for r in rows)
    assert {"train/gp", "train/loss_scale"} <= set(metrics)
    # GradScaler's default 2^16 overflows the first penalty (its seed gradient, 2^16, is over fp16's 65504):
    # that critic step alone is dropped, at 2^15 the run goes on
    assert m.backoff.overflows == 1 and rows[0]["train/loss_scale"] < 2.0**16 and m.nonfinite.skipped == 0
    assert (m.d_steps, m.g_steps) == (40, 8)
    assert m.trainer.precision_plugin.scaler.get_scale() <= 2.0**15


def test_an_overflowing_scale_backs_off_and_training_goes_on(tmp_path, tracked, monkeypatch):
    monkeypatch.setattr(FP16Trainer, "init_scale", 2.0**60)  # every penalty overflows until the scale is <= 2^15
    train(make_cfg(tmp_path, *WGAN_GP, *FP16, *tracked, "iterations=12"))
    m = Tracked.last
    scale = m.trainer.precision_plugin.scaler.get_scale()
    # 2^60 .. 2^16: 45 dropped critic steps (the G steps' own inf gradients, skipped by GradScaler, halve it too)
    assert 30 <= m.backoff.overflows <= 45 and scale <= 2.0**15 and m.nonfinite.skipped == 0
    assert (m.d_steps, m.g_steps) == (60, 12)  # dropped steps count, as skipped ones do
    rows = read_metrics(tmp_path)
    scales = [r["train/loss_scale"] for r in rows]
    assert scales == sorted(scales, reverse=True) and scales[0] > 2.0**50 and scales[-1] <= 2.0**15
    assert "train/d_loss" not in rows[0]  # the first iteration's 5 critic steps all overflowed
    assert all(math.isfinite(r["train/d_loss"]) and math.isfinite(r["train/gp"]) for r in rows[-3:])
    d_now = m.discriminator.state_dict()
    assert not all(torch.equal(d_now[k], v) for k, v in m.d_init.items())  # the later critic steps were taken
    assert all(v.isfinite().all() for v in d_now.values())


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_a_real_divergence_in_fp16_stops_once_the_scale_is_spent(tmp_path, tracked, monkeypatch, mode):
    monkeypatch.setattr(Tracked, "nan_at", 3)  # NaN in D before the 4th critic step: every loss after is NaN
    overrides = [*TOY, *FP16, *tracked, "iterations=40", f"model.on_nonfinite={mode}", "model.max_skips=3"]
    with pytest.raises(Diverged) as e:
        train(make_cfg(tmp_path, *overrides))
    m = Tracked.last
    msg = str(e.value)
    # first, one halving per bad step (critic and generator alike) while the scale is >= 1 ...
    assert m.backoff.overflows == math.log2(m.scale_at_nan) + 1
    assert m.trainer.precision_plugin.scaler.get_scale() == 0.5
    # ... then the step is non-finite as in fp32: stop at once, or skip until max_skips of one net in a row
    assert re.search(r"in fp16 \(16-mixed\), with the loss scale already down to 0\.5: .*"
                     r"use trainer\.precision=bf16-mixed \(or 32-true\)\. Fix: ", msg), msg
    if mode == "stop":
        assert re.search(r": the (critic|generator) step was non-finite \(train/[dg]_loss=nan\) in fp16", msg), msg
        assert m.nonfinite.skipped == 0
    else:
        assert re.search(r": 3 (critic|generator) steps in a row were non-finite and skipped \(model\.max_skips; "
                         r"the last: train/[dg]_loss=nan\) in fp16", msg), msg
        assert sorted(m.nonfinite.in_a_row.values()) == [2, 3] and m.nonfinite.skipped == 5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast with Lightning's own scaler needs a GPU")
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_wgan_gp_conv_nets_train_in_mixed_precision_on_gpu(tmp_path, idx_root, precision):
    """The config a user writes (no test plugin): finite losses every row; fp16 logs its scale and overflows."""
    train(make_cfg(tmp_path, "model=wgan_gp", f"data.root={idx_root}", "data.size=32", "data.batch_size=64",
                   "trainer.accelerator=gpu", f"trainer.precision={precision}", "iterations=20"))
    rows = read_metrics(tmp_path)
    assert rows[-1]["step"] == 20 and all(math.isfinite(v) for r in rows for v in r.values())
    assert all(("train/loss_scale" in r) == (precision == "16-mixed") for r in rows)
