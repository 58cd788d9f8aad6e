"""DDP on two CPU processes (gloo), as `python train.py trainer.devices=2` launches it: the losses and the final
weights of 2 ranks with batch B equal those of one process with batch 2B (global batches and draws, gradients
averaged over ranks: strategy.py, ranks.py), also across a resume, where every rank goes on exactly, even one
whose random streams went their own way (callbacks/run_state.py); one run folder, no stray Hydra folders."""
import json
import random
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from .conftest import read_metrics, train_py

LOSSES = ("train/d_loss", "train/g_loss", "train/gp", "train/wasserstein")
# Weights: a sum over 2 ranks and a sum over one batch of 2B round differently (~1e-7), and Adam with beta1 = 0
# turns a near-zero gradient into a step of about lr x sign: a few such components move by ~1e-6 after 10 steps.
WEIGHT_TOL = {"rtol": 1e-4, "atol": 1e-5}


def run(cwd: Path, name: str, *overrides: str) -> Path:
    out = cwd / name
    done = train_py(f"hydra.run.dir={out}", "metrics=none", "trainer.enable_progress_bar=false",
                    "trainer.log_every_n_steps=1", "trainer.accelerator=cpu", *overrides, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


class RankLog(L.Callback):
    """Test-only (`+callbacks.ranklog._target_=tests.test_ddp.RankLog`): what each rank computed, per iteration,
    written at the end of the run to <dirpath>/losses.r<rank>.json: every loss it backpropagated (its own, before
    the ranks' average) and, with `diverge`, a draw of Python's, NumPy's and torch's streams as the iteration
    starts (after the checkpoint of the one before), rank 1 drawing once more from each before every step, so its
    streams leave rank 0's."""

    def __init__(self, dirpath: str, diverge: bool = False):
        self.dirpath, self.diverge = Path(dirpath), diverge
        self.rows: list[dict] = []
        self.losses: list[float] = []
        self.draws: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.diverge and trainer.global_rank == 1:
            random.random(), np.random.random(), torch.rand(())
        if self.diverge and pl_module.at_iteration_end:  # the previous iteration ended: this one starts
            self.draws = [random.random(), np.random.random(), torch.rand(()).item()]

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.losses.append(loss.item())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.at_iteration_end:
            self.rows.append({"iteration": pl_module.iteration, "losses": self.losses, "draws": self.draws})
            self.losses, self.draws = [], []

    def on_train_end(self, trainer, pl_module) -> None:
        (self.dirpath / f"losses.r{trainer.global_rank}.json").write_text(json.dumps(self.rows))


def rank_rows(out: Path, rank: int) -> dict[int, dict]:
    return {row["iteration"]: row for row in json.loads((out / f"losses.r{rank}.json").read_text())}


RANKLOG = ["+callbacks.ranklog._target_=tests.test_ddp.RankLog", "+callbacks.ranklog.dirpath=${out_dir}"]
KEEP_2 = ["callbacks.checkpoint.every=2", "callbacks.checkpoint.keep=true"]  # also checkpoints/iter_0000002.ckpt


def assert_ranks_resumed(full: Path, resumed: Path, iterations: list[int]) -> None:
    """Every rank of the resumed run computed, bit for bit, what it computed in the run never stopped."""
    for rank in (0, 1):
        a, b = rank_rows(full, rank), rank_rows(resumed, rank)
        assert sorted(b) == iterations
        for it in iterations:
            assert b[it] == a[it], (rank, it)
    wa, wb = weights(full), weights(resumed)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


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
    """Toy WGAN-GP (double backward) with spectral norm and an EMA generator, n_critic = 5, 3 iterations; the
    2-rank run is resumed on 2 ranks from its checkpoint at iteration 2: every rank's losses of iteration 3 and
    the final weights are those of the run never stopped, exactly."""
    common = ["data=ring8", "model=wgan_gp", "net.g.hidden=32", "net.d.hidden=32", "net.d.spectral_norm=true",
              "model.ema_decay=0.9", "iterations=3"]
    one = run(tmp_path, "one", *common, "data.batch_size=64")
    first = run(tmp_path, "two_a", *common, "data.batch_size=32", "trainer.devices=2", *KEEP_2, *RANKLOG)
    two = run(tmp_path, "two_b", *common, "data.batch_size=32", "trainer.devices=2", *RANKLOG,
              f"ckpt_path={first}/checkpoints/iter_0000002.ckpt")
    assert [r["step"] for r in read_metrics(first)] == [1, 2, 3] and [r["step"] for r in read_metrics(two)] == [3]
    rows = read_metrics(one)
    for ra, rb in zip(rows, read_metrics(first)):
        for key in LOSSES:
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (ra["step"], key)
    wa, wb = weights(one), weights(first)
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), **WEIGHT_TOL), k
    assert len(rank_rows(first, 1)[3]["losses"]) == 5 + 1  # the 5 critic steps' losses and the generator's
    assert rank_rows(first, 0)[3] != rank_rows(first, 1)[3]  # each rank its own half of the batch
    assert_ranks_resumed(first, two, [3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two_a", "two_b"]  # no folder per rank
    assert not list((tmp_path / "two_a").glob("**/*rank*"))


@pytest.mark.slow
def test_a_rank_whose_random_streams_differ_resumes_exactly(tmp_path):
    """Rank 1 draws from Python's, NumPy's and torch's streams at every step and rank 0 does not (as a callback or
    a library might), so its latents leave rank 0's: resumed on 2 ranks, each rank goes on from its own states.
    With rank 0's states restored on both, rank 1's draws and losses after the resume would be rank 0's."""
    common = ["data=ring8", "net.g.hidden=16", "net.d.hidden=16", "data.batch_size=16", "trainer.devices=2",
              "iterations=3", *RANKLOG, "+callbacks.ranklog.diverge=true"]
    full = run(tmp_path, "full", *common, *KEEP_2)
    resumed = run(tmp_path, "resumed", *common, f"ckpt_path={full}/checkpoints/iter_0000002.ckpt")
    r0, r1 = rank_rows(full, 0), rank_rows(full, 1)
    assert all(r0[it]["draws"][k] != r1[it]["draws"][k] for it in (1, 2, 3) for k in range(3))
    assert_ranks_resumed(full, resumed, [3])


def test_rank_states_of_another_world_size_give_rank_0s_to_every_rank_with_a_warning():
    """In one process (world 1): a checkpoint's single state (as saved before every rank's were) restores
    silently; two ranks' states restore rank 0's, with one warning."""
    from ganlab.callbacks.run_state import RunState, get_rng_state

    state = RunState({})
    saved = state.state_dict()
    assert len(saved["rng"]) == 1
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    other = get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state.load_state_dict({"rng": saved["rng"][0]})  # the old format: one dict
    b = torch.rand(3)
    state.load_state_dict(saved)
    assert torch.equal(torch.rand(3), b)
    with pytest.warns(UserWarning, match="random states of 2 rank\\(s\\), this run has 1"):
        state.load_state_dict({"rng": [other, saved["rng"][0]]})
    assert torch.equal(torch.rand(3), a)


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
