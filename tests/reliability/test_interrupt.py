"""SIGINT / SIGUSR1 to a real `python train.py`: it writes last.ckpt at an iteration end, says so and exits with
128 + the signal's number; a second Ctrl-C does not wait; Lightning's own SLURM requeue handler stays off.
(SIGTERM, SIGUSR2 and the exact continuation after each: test_faults.py.)"""
import os
import signal
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from ganlab.callbacks.stop import Stop
from ganlab.config import build
from ganlab.train import build_module, build_trainer

from .. import launcher
from ..conftest import make_cfg, read_metrics

ROOT = Path(__file__).resolve().parents[2]
# WGAN-GP: 5 critic steps per iteration, so a signal mostly lands mid-iteration; batch and nets small for speed
RUN = ["data=grid25", "model=wgan_gp", "data.batch_size=32", "net.g.hidden=16", "net.d.hidden=16", "iterations=400",
       "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "metrics=none"]


@pytest.fixture
def start():
    """start(out, *args): `python train.py RUN ARGS` writing into out, its output in out.log, on one thread (so
    runs compare exactly); runs still going when the test ends are killed."""
    procs = []

    def launch(out: Path, *args: str) -> launcher.Launched:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
        Path(f"{out}.log").unlink(missing_ok=True)
        procs.append(launcher.popen("train.py", *RUN, *args, f"hydra.run.dir={out}", env=env, stdout=f"{out}.log"))
        return procs[-1]

    yield launch
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def interrupt(start, out: Path, signum: int) -> tuple[int, str]:
    """Start a run, send it `signum` once its CSV shows a few iterations; its exit status and output."""
    proc = start(out)
    csv, deadline = out / "csv" / "metrics.csv", time.monotonic() + 120
    while not (csv.is_file() and csv.read_text().count("\n") > 3):
        assert proc.poll() is None, Path(f"{out}.log").read_text()
        assert time.monotonic() < deadline, "no iterations logged in 120 s"
        time.sleep(0.05)
    proc.send_signal(signum)
    return proc.wait(timeout=120), Path(f"{out}.log").read_text()


def rows(out: Path) -> dict[int, dict[str, float]]:
    """The logged values by iteration: train/d_loss, train/g_loss, train/gp, train/wasserstein."""
    return {int(r.pop("step")): r for r in read_metrics(out)}


# SIGTERM and SIGUSR2, and the exact continuation after a signal: test_faults.py
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGUSR1], ids=lambda s: s.name)
def test_sigint_and_sigusr1_checkpoint_and_exit_with_128_plus_the_signal(tmp_path, start, signum):
    rc, log = interrupt(start, tmp_path / "run", signum)
    assert rc == 128 + signum, log
    n = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["ganlab_steps"]["g_steps"]
    assert 0 < n < 400
    assert f"interrupted by {signum.name} at iteration {n};" in log


def test_a_second_ctrl_c_does_not_wait_and_handlers_are_put_back():
    # as in a fresh `python train.py` (earlier in-process trainings may have left SIGINT elsewhere)
    outside = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
        cb = Stop("unused")
        cb.on_train_start(None, None)
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the first Ctrl-C is recorded ...
        assert cb.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):  # ... the second is Python's own
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        assert signal.getsignal(signal.SIGTERM) == cb._handle
        cb.on_train_end(None, None)
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        signal.signal(signal.SIGINT, outside)


def test_lightning_slurm_requeue_handler_is_not_installed(tmp_path, monkeypatch):
    """Under SLURM Lightning would take SIGUSR1 itself from the start of the fit (a checkpoint from inside the
    handler, mid-step, then `scontrol requeue`): build_trainer turns its auto-requeue off."""
    for k, v in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "1", "SLURM_PROCID": "0",
                 "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(k, v)
    seen = {}

    class Record(L.Callback):
        def on_train_start(self, trainer, pl_module):  # Lightning's handlers are in place by now
            seen["usr1"] = signal.getsignal(signal.SIGUSR1)

    before = signal.getsignal(signal.SIGUSR1)
    cfg = make_cfg(tmp_path, *RUN[:4], "iterations=1", "metrics=none")
    datamodule = build(cfg.data, "data", seed=0)
    # Stop(None) ends the fit at `iterations` and takes no signal itself: SIGUSR1 is whoever else's
    trainer = build_trainer(cfg, callbacks=[Stop(None), Record()], logger=False, enable_progress_bar=False)
    trainer.fit(build_module(cfg, datamodule), datamodule=datamodule)
    assert seen["usr1"] == before
