"""DDP on two CPU processes (gloo), as `python train.py trainer.devices=2` launches it: the losses and the final
weights of 2 ranks with batch B equal those of one process with batch 2B (global batches and draws, gradients
averaged over ranks: strategy.py, ranks.py), also across a resume; one run folder, no stray Hydra folders."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import read_metrics

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("train/d_loss", "train/g_loss", "train/gp", "train/wasserstein")
# Weights: a sum over 2 ranks and a sum over one batch of 2B round differently (~1e-7), and Adam with beta1 = 0
# turns a near-zero gradient into a step of about lr x sign: a few such components move by ~1e-6 after 10 steps.
WEIGHT_TOL = {"rtol": 1e-4, "atol": 1e-5}


def run(cwd: Path, name: str, *overrides: str) -> Path:
    out = cwd / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={out}", "metrics=none",
           "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "trainer.accelerator=cpu", *overrides]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_run(one: Path, two: Path) -> None:
    a, b = read_metrics(one), read_metrics(two)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for key in LOSSES:
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (ra["step"], key)
    wa, wb = weights(one), weights(two)
    assert wa.keys() == wb.keys()
    for k in wa:  # G, D, EMA, spectral norm's u and v
        assert torch.allclose(wa[k].float(), wb[k].float(), **WEIGHT_TOL), k


@pytest.mark.slow
def test_two_ranks_with_batch_b_train_as_one_process_with_batch_2b(tmp_path):
    """Toy WGAN-GP (double backward) with spectral norm and an EMA generator, n_critic = 5; the 2-rank run is
    interrupted after 2 iterations and resumed to 3 on 2 ranks."""
    common = ["data=ring8", "model=wgan_gp", "net.g.hidden=32", "net.d.hidden=32", "net.d.spectral_norm=true",
              "model.ema_decay=0.9"]
    one = run(tmp_path, "one", *common, "data.batch_size=64", "iterations=3")
    first = run(tmp_path, "two_a", *common, "data.batch_size=32", "trainer.devices=2", "iterations=2")
    two = run(tmp_path, "two_b", *common, "data.batch_size=32", "trainer.devices=2", "iterations=3",
              f"ckpt_path={first}/checkpoints/last.ckpt")
    assert read_metrics(first)[-1]["step"] == 2 and [r["step"] for r in read_metrics(two)] == [3]
    rows = read_metrics(one)
    for ra, rb in zip(rows, read_metrics(first) + read_metrics(two)):
        for key in LOSSES:
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (ra["step"], key)
    wa, wb = weights(one), weights(two)
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), **WEIGHT_TOL), k
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two_a", "two_b"]  # no folder per rank
    assert not list((tmp_path / "two_a").glob("**/*rank*"))


@pytest.mark.slow
def test_two_ranks_on_images_match_one_process(tmp_path, idx_root):
    """On-device images (epoch permutations cut into global batches, each rank its block), conv nets. Plain SGD,
    whose step is proportional to the gradient: gradients summed over the ranks instead of averaged would step
    twice as far (Adam and RMSprop would not show it: they are invariant to the gradient's scale)."""
    sgd = [f"optim.{net}.{key}" for net in "gd" for key in ("_target_=torch.optim.SGD", "lr=0.01")]
    common = ["data=fashion_mnist", f"data.root={idx_root}", "model=wgan_gp", "net.g.ch=8", "net.d.ch=8",
              "net.g.norm=none", "iterations=2", "~optim.d.betas", "~optim.g.betas", *sgd]
    assert_same_run(run(tmp_path, "one", *common, "data.batch_size=16"),
                    run(tmp_path, "two", *common, "data.batch_size=8", "trainer.devices=2"))


def test_strategies_that_wrap_the_whole_module_are_refused(tmp_path):
    from ganlab.config import ConfigError
    from ganlab.train import train

    from .conftest import make_cfg

    with pytest.raises(ConfigError, match="trainer.strategy=fsdp: ganlab steps the critic and the generator in turn"):
        train(make_cfg(tmp_path, "data=ring8", "trainer.devices=2", "trainer.strategy=fsdp", "iterations=1"))
    assert not (tmp_path / "checkpoints").exists()
