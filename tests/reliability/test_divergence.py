"""Divergence never loses a run: NaN/inf stops it with one clear message naming the step, keeps the last good
checkpoint and draws its generator; model.on_nonfinite=skip drops bad steps instead."""
import itertools
import math
from pathlib import Path

import pytest
import torch

from ganlab.config import ConfigError
from ganlab.divergence import Diverged
from ganlab.losses import NonSaturating
from ganlab.module import GANModule
from ganlab.train import train

from .. import launcher
from ..conftest import make_cfg, read_metrics

ROOT = Path(__file__).resolve().parents[2]
TOY = ["data=grid25", "net.g.hidden=16", "net.d.hidden=16", "data.batch_size=64"]  # n_critic = 1


def nan_critic_loss(monkeypatch, steps, first: int = 1) -> None:
    """The critic's loss, and so its gradients, is NaN at the critic steps in `steps` (1-based; the run's first
    critic step is number `first`), as when its logits blow up."""
    monkeypatch.undo()
    d, calls = NonSaturating.d, itertools.count(first)
    monkeypatch.setattr(NonSaturating, "d",
                        lambda self, real, fake: d(self, real, fake) * (math.nan if next(calls) in steps else 1.0))


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def finite(ckpt: dict) -> bool:
    return all(v.isfinite().all() for v in ckpt["state_dict"].values() if v.is_floating_point())


class OverflowsAt4(GANModule):
    """An update that overflows the critic's weights at iteration 4, from a finite loss and finite gradients
    (what an lr of 1e39 does): only the weight check before each checkpoint can see it."""

    def training_step(self, batch, batch_idx):
        super().training_step(batch, batch_idx)
        if self.iteration == 4:
            with torch.no_grad():
                next(self.discriminator.parameters()).fill_(math.inf)


def test_stop_names_the_step_keeps_the_last_good_checkpoint_and_draws_it(tmp_path, monkeypatch):
    nan_critic_loss(monkeypatch, range(8, 10**9))
    with pytest.raises(Diverged, match=r"^iteration 8 \(7 critic steps done\): the critic step was non-finite "
                                       r"\(train/d_loss=nan\)\. Fix: .*model\.on_nonfinite=skip") as e:
        train(make_cfg(tmp_path, *TOY, "iterations=20", "callbacks.checkpoint.every=3", "model.ema_decay=0.9"))
    ckpt = load(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["ganlab_steps"] == {"d_steps": 6, "g_steps": 6} and finite(ckpt)  # iteration 6, before the NaN
    grid = tmp_path / "samples" / "diverged_last_good.png"
    assert grid.is_file()
    assert str(e.value).endswith(f"Last good checkpoint: {tmp_path}/checkpoints/last.ckpt (iteration 6); "
                                 f"its samples: {grid}.")
    assert max(r["step"] for r in read_metrics(tmp_path)) == 7  # the log holds every iteration before the NaN


def test_weights_gone_non_finite_are_never_checkpointed(tmp_path):
    with pytest.raises(Diverged, match=r"^iteration 4 .*: the weights are non-finite \(NaN/inf\); .*last\.ckpt "
                                       r"was not overwritten"):
        train(make_cfg(tmp_path, *TOY, "iterations=10", "callbacks.checkpoint.every=2",
                       "model._target_=tests.reliability.test_divergence.OverflowsAt4"))
    ckpt = load(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["ganlab_steps"]["d_steps"] == 2 and finite(ckpt)
    assert (tmp_path / "samples" / "diverged_last_good.png").is_file()


def test_skip_drops_bad_steps_finishes_the_run_and_resumes_exactly(tmp_path, monkeypatch):
    overrides = [*TOY, "iterations=10", "model.on_nonfinite=skip", "callbacks.checkpoint.every=5",
                 "callbacks.checkpoint.keep=true"]
    nan_critic_loss(monkeypatch, {4, 5, 6})
    full = tmp_path / "full"
    assert train(make_cfg(full, *overrides)).metrics["train/skipped"] == 3
    rows = read_metrics(full)
    assert [r["train/skipped"] for r in rows] == [0, 0, 0, 1, 2, 3, 3, 3, 3, 3]
    assert [r["step"] for r in rows if "train/d_loss" not in r] == [4, 5, 6]  # a skipped step logs no loss
    assert all(math.isfinite(v) for r in rows for v in r.values())
    end = load(full / "checkpoints" / "last.ckpt")
    assert end["ganlab_steps"] == {"d_steps": 10, "g_steps": 10} and finite(end)
    assert end["ganlab_skips"] == {"skipped": 3, "in_a_row": {"critic": 0, "generator": 0}, "overflows": 0}

    # resumed at iteration 5 (two skips in, the third to come): the same run, counters included
    nan_critic_loss(monkeypatch, {6}, first=6)
    resumed = tmp_path / "resumed"
    train(make_cfg(resumed, *overrides, f"ckpt_path={full}/checkpoints/iter_0000005.ckpt"))
    end_resumed = load(resumed / "checkpoints" / "last.ckpt")
    assert end_resumed["ganlab_skips"] == end["ganlab_skips"]
    for k, v in end["state_dict"].items():
        assert torch.equal(v, end_resumed["state_dict"][k]), k


def test_skip_still_stops_after_max_skips_in_a_row(tmp_path, monkeypatch):
    nan_critic_loss(monkeypatch, range(3, 10**9))
    with pytest.raises(Diverged, match=r"^iteration 7 \(6 critic steps done\): 5 critic steps in a row were "
                                       r"non-finite and skipped \(model\.max_skips; the last: train/d_loss=nan\)"):
        train(make_cfg(tmp_path, *TOY, "iterations=20", "model.on_nonfinite=skip", "model.max_skips=5"))


@pytest.mark.parametrize("override, message", [
    ("model.on_nonfinite=ignore", r"model\.on_nonfinite must be 'stop' or 'skip', got 'ignore'"),
    ("model.max_skips=0", r"model\.max_skips must be >= 1, got 0"),
])
def test_bad_options_fail_before_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(tmp_path, *TOY, "iterations=2", override))


@pytest.mark.slow
def test_cli_prints_one_line_without_a_traceback(tmp_path):
    # a real blow-up: the critic's first Adam step moves its weights by ~1e30, its next logits overflow
    r = launcher.run("train.py", *TOY, "iterations=20", "optim.d.lr=1e30", "metrics=none",
                     "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}", timeout=120)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("ganlab:")]
    assert len(lines) == 1 and lines[0].startswith("ganlab: diverged: iteration "), r.stderr
    assert "non-finite" in lines[0] and "No checkpoint was written before it" in lines[0]


# ---- the finite check (divergence.all_finite) against each tensor's own isfinite ----------------------------------
def _cases():
    big = torch.full((1000,), 60000.0, dtype=torch.float16)  # finite, but its L2 norm (1.9e6) is past fp16's 65504
    yield "finite", [torch.tensor(0.7), torch.randn(64, 3, 4, 4), torch.randn(10)], True
    for bad in (math.nan, math.inf, -math.inf):
        grad = torch.randn(64, 3, 4, 4)
        grad[5, 1, 2, 3] = bad
        yield f"a gradient entry {bad}", [torch.tensor(0.7), grad, torch.randn(10)], False
        yield f"the loss {bad}", [torch.tensor(bad), torch.randn(10)], False
    yield "bf16 loss, fp32 gradients", [torch.tensor(0.7, dtype=torch.bfloat16), torch.randn(10)], True
    yield "bf16 NaN loss", [torch.tensor(math.nan, dtype=torch.bfloat16), torch.randn(10)], False
    yield "fp16 past its norm's range", [big], True
    yield "fp16 with an inf", [torch.cat([big, torch.tensor([math.inf], dtype=torch.float16)])], False
    yield "float64", [torch.randn(5, dtype=torch.float64)], True
    yield "integer tensors are not checked", [torch.tensor([1, 2]), torch.randn(3)], True
    yield "nothing to check", [torch.tensor([1, 2])], True


@pytest.mark.parametrize("what, tensors, finite", list(_cases()), ids=[c[0] for c in _cases()])
def test_all_finite_says_what_each_tensors_isfinite_says(what, tensors, finite):
    from ganlab.divergence import all_finite
    reference = all(bool(t.isfinite().all()) for t in tensors if t.is_floating_point())
    assert reference == finite  # the case is what it says
    verdict = all_finite(tensors)
    assert verdict.dtype == torch.bool and verdict.dim() == 0 and bool(verdict) is finite


def test_all_finite_refuses_norms_past_float32s_range():
    """Finite values whose total L2 norm passes ~1.8e19 (its square, float32's range) count as diverged: the one
    place where the check is stricter than isfinite, and only for weights or gradients no training survives."""
    from ganlab.divergence import all_finite
    assert bool(all_finite([torch.full((4,), 1e18)]))
    assert not bool(all_finite([torch.full((4,), 1e19)]))
