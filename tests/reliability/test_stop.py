"""callbacks/stop.py alone ends a run, and train() returns its decision (result.TrainResult): at `iterations`
with or without the callbacks group, at trainer.max_time, on a signal. The real processes (exit statuses,
continuing): test_interrupt.py, test_faults.py."""
import signal

import pytest
import torch

from ganlab.config import ConfigError
from ganlab.module import GANModule
from ganlab.result import End
from ganlab.train import train

from ..conftest import make_cfg, read_metrics

TOY = ["data=grid25", "net.g.hidden=16", "net.d.hidden=16", "data.batch_size=32"]


def g_steps(ckpt) -> int:
    return torch.load(ckpt, weights_only=True)["ganlab_steps"]["g_steps"]


def test_a_run_ends_at_its_iterations_without_the_callbacks_group(tmp_path):
    # Lightning's own bound (2 optimizer steps per iteration): a run Stop does not end fails, rather than hangs
    result = train(make_cfg(tmp_path, *TOY, "iterations=3", "~callbacks", "trainer.max_steps=20"))
    assert (result.end, result.iteration, result.signum) == (End.COMPLETED, 3, None)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_a_stop_in_the_callbacks_group_and_a_bad_time_limit_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^callbacks.stop: train\(\) gives every run callbacks/stop.py itself .*"
                                          r"remove callbacks.stop$"):
        train(make_cfg(tmp_path, *TOY, "iterations=1", "+callbacks.stop._target_=ganlab.callbacks.stop.Stop",
                       "+callbacks.stop.dirpath=x"))
    with pytest.raises(ConfigError, match=r"^trainer.max_time='4h' is not DD:HH:MM:SS: e.g. trainer.max_time="):
        train(make_cfg(tmp_path, *TOY, "iterations=1", "trainer.max_time=4h"))


def test_the_time_limit_ends_the_run_at_an_iteration_end_with_its_final_checkpoint(tmp_path):
    result = train(make_cfg(tmp_path, *TOY, "iterations=100000", "trainer.max_time={seconds:0.5}",
                            "callbacks.checkpoint.every=100000"))
    assert result.end is End.TIME_LIMIT and 0 < result.iteration < 100000 and result.signum is None
    assert g_steps(tmp_path / "checkpoints" / "last.ckpt") == result.iteration  # the final checkpoint, there
    assert read_metrics(tmp_path)[-1]["step"] == result.iteration and "train/d_loss" in result.metrics


def test_a_signal_ends_the_run_at_the_iteration_end_with_its_checkpoint_and_puts_the_handler_back(tmp_path,
                                                                                                    monkeypatch):
    critic_step = GANModule.critic_step

    def signalled_at_3(self, real, y, run):  # SIGUSR1 inside iteration 3's step (Stop's handler records it)
        logged = critic_step(self, real, y, run)
        if self.iteration == 2:  # the step completing iteration 3
            signal.raise_signal(signal.SIGUSR1)
        return logged

    monkeypatch.setattr(GANModule, "critic_step", signalled_at_3)
    def mine(signum, frame):
        pytest.fail("SIGUSR1 reached the handler of before training: Stop's was not in place")

    outside = signal.signal(signal.SIGUSR1, mine)
    try:
        result = train(make_cfg(tmp_path, *TOY, "iterations=10", "callbacks.checkpoint.every=100"))
        assert signal.getsignal(signal.SIGUSR1) is mine  # put back at the end of training
    finally:
        signal.signal(signal.SIGUSR1, outside)
    assert (result.end, result.iteration, result.signum) == (End.SIGNAL, 3, signal.SIGUSR1)
    assert g_steps(tmp_path / "checkpoints" / "last.ckpt") == 3
    assert "train/d_loss" in result.metrics and not {"interrupted", "stopped_at", "time_limit"} & set(result.metrics)
