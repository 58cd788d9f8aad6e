"""launch.py, the one place that ends a launch: every ending (a TrainResult, or the exception out of the task) ->
status.json, error.txt, the `ganlab: ...` line and the exit, in a single run and in a multirun, on rank zero and
on another DDP rank. The real processes behind these lines: test_run_folder.py, test_interrupt.py, test_faults.py,
test_config.py, test_sweeps.py."""
import errno
import json
import signal

import pytest
from omegaconf import OmegaConf

from ganlab.config import ConfigError
from ganlab.divergence import Diverged
from ganlab.launch import Launch, ending
from ganlab.result import End, TrainResult
from ganlab.run_folder import claim

CFG = OmegaConf.create({"iterations": 10, "optimized_metric": None, "trainer": {"max_time": "00:00:00:02"}})
DIVERGED = Diverged("non-finite critic loss (nan)", 3, 3)
SECOND = ("stopped by a second Ctrl-C (SIGINT) mid-iteration; the same command continues it from its last "
          "checkpoint")


@pytest.mark.parametrize("ended, expected", [
    (TrainResult(End.COMPLETED, 10), (End.COMPLETED, "completed", None, "completed 10 iterations; the run is {run} "
                                      "(status.json, csv/metrics.csv, checkpoints/, samples/): `python report.py "
                                      "{run} --out report.md` sums it up")),
    (TrainResult(End.TIME_LIMIT, 4), (End.TIME_LIMIT, "stopped", "stopped by the time limit (trainer.max_time="
                                      "00:00:00:02) at iteration 4 of 10; the same command continues it",
                                      "stopped by the time limit at iteration 4 of 10; the same command continues it")),
    (TrainResult(End.SIGNAL, 3, signum=signal.SIGTERM),
     (End.SIGNAL, "interrupted", "stopped by SIGTERM at iteration 3 of 10; the same command continues it",
      "the same command continues it")),
    (ConfigError("model.n_critic must be >= 1\nsecond line"),
     (End.FAILED, "config_error", "model.n_critic must be >= 1", "config error: model.n_critic must be >= 1\nsecond line")),
    (DIVERGED, (End.DIVERGED, "diverged", str(DIVERGED), f"diverged: {DIVERGED}")),
    (OSError(errno.ENOSPC, "No space left on device", "/run/x.ckpt"),
     (End.FAILED, "failed", "cannot write /run/x.ckpt: no space left on the device", None)),
    (RuntimeError("boom"), (End.FAILED, "failed", "RuntimeError: boom", None)),
    (KeyboardInterrupt(), (End.SIGNAL, "interrupted", SECOND, None)),
], ids=["completed", "time_limit", "signal", "config_error", "diverged", "disk_full", "bug", "second_ctrl_c"])
def test_every_ending_has_its_status_line_and_message(tmp_path, ended, expected):
    e = ending(CFG, ended, tmp_path)
    if isinstance(ended, OSError):  # a full disk: checkpoint_io's line, the fix after the cause
        assert (e.end, e.status) == expected[:2] and e.line.startswith(expected[2]) and e.say == e.line
    else:
        assert (e.end, e.status, e.line, e.say) == (*expected[:3], expected[3] and expected[3].format(run=tmp_path))
    assert e.signum == (ended.signum if isinstance(ended, TrainResult) else None)
    assert (e.error is None) == isinstance(ended, TrainResult)


def status(run_dir) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def launched(tmp_path, task, multirun=False, cfg=CFG):
    with claim(tmp_path) as folder:
        return Launch(cfg, tmp_path, multirun, folder).run(task)


def fails(e):
    def task():
        raise e
    return task


def test_a_completed_run_records_its_metrics_and_returns_its_objective(tmp_path):
    cfg = OmegaConf.merge(CFG, {"optimized_metric": "val/w1"})
    metrics = {"train/d_loss": 0.5, "val/w1": 0.25, "train_d_loss": 0.5}  # the progress bar's copy is left out
    assert launched(tmp_path, lambda: TrainResult(End.COMPLETED, 10, metrics), cfg=cfg) == 0.25
    assert status(tmp_path)["status"] == "completed" and status(tmp_path)["error"] is None
    assert status(tmp_path)["metrics"] == {"train/d_loss": 0.5, "val/w1": 0.25}
    assert not (tmp_path / "error.txt").exists()


def test_a_completed_run_says_its_scores_and_folder_alone_not_in_a_sweep(tmp_path, capsys):
    metrics = {"train/d_loss": 0.5, "val/fid": 11.654096, "val/recall": 0.7409}
    launched(tmp_path, lambda: TrainResult(End.COMPLETED, 10, metrics))
    assert capsys.readouterr().err == (f"ganlab: completed 10 iterations (val/fid 11.65, val/recall 0.7409); the run "
                                       f"is {tmp_path} (status.json, csv/metrics.csv, checkpoints/, samples/): "
                                       f"`python report.py {tmp_path} --out report.md` sums it up\n")
    launched(tmp_path, lambda: TrainResult(End.COMPLETED, 10, metrics), multirun=True)
    assert capsys.readouterr().err == ""  # the sweep's own report sums its jobs up


def test_a_completed_run_without_its_objective_is_a_config_error_with_its_metrics(tmp_path):
    cfg = OmegaConf.merge(CFG, {"optimized_metric": "val/fid"})
    with pytest.raises(SystemExit, match=r"^ganlab: config error: optimized_metric=val/fid: the run never logged"):
        launched(tmp_path, lambda: TrainResult(End.COMPLETED, 10, {"train/d_loss": 0.5}), cfg=cfg)
    assert status(tmp_path)["status"] == "config_error" and status(tmp_path)["metrics"] == {"train/d_loss": 0.5}
    assert (tmp_path / "error.txt").is_file()


def test_the_time_limit_exits_0_with_one_line(tmp_path, capsys):
    assert launched(tmp_path, lambda: TrainResult(End.TIME_LIMIT, 4, {"train/d_loss": 0.5})) is None
    assert capsys.readouterr().err == "ganlab: stopped by the time limit at iteration 4 of 10; the same command " \
                                      "continues it\n"
    assert status(tmp_path)["status"] == "stopped" and status(tmp_path)["metrics"] == {"train/d_loss": 0.5}


@pytest.mark.parametrize("multirun", [False, True])
def test_a_signal_is_handed_on_after_its_status_in_a_multirun_too(tmp_path, multirun):
    """The handler there before training gets the signal (submitit's requeue); if it returns, 128 + the signal."""
    seen = []
    before = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        with pytest.raises(SystemExit) as out:
            launched(tmp_path, lambda: TrainResult(End.SIGNAL, 3, signum=signal.SIGUSR1), multirun)
    finally:
        signal.signal(signal.SIGUSR1, before)
    assert out.value.code == 128 + signal.SIGUSR1 and seen == [signal.SIGUSR1]
    assert status(tmp_path)["status"] == "interrupted" and "SIGUSR1 at iteration 3 of 10" in status(tmp_path)["error"]
    with pytest.raises(SystemExit) as out:  # Ctrl-C: no one else's to call, the shell's 130
        launched(tmp_path, lambda: TrainResult(End.SIGNAL, 3, signum=signal.SIGINT), multirun)
    assert out.value.code == 130


@pytest.mark.parametrize("error, said", [(ConfigError("seed must be a number"), "config error: seed must be a number"),
                                         (DIVERGED, f"diverged: {DIVERGED}")], ids=["config_error", "diverged"])
def test_a_failed_single_run_exits_1_with_one_line_and_a_failed_job_lets_the_sweep_go_on(tmp_path, error, said):
    with pytest.raises(SystemExit) as out:
        launched(tmp_path / "single", fails(error))
    assert out.value.code == f"ganlab: {said}"  # sys.exit(str): the line on stderr, exit status 1
    assert launched(tmp_path / "job", fails(error), multirun=True) is None  # FAILED_OBJECTIVE: the sweep goes on
    for run in ("single", "job"):
        assert status(tmp_path / run)["status"] == ending(CFG, error, tmp_path).status
        assert type(error).__name__ in (tmp_path / run / "error.txt").read_text()  # the traceback


def test_a_bug_shows_its_traceback_in_a_single_run_and_a_second_ctrl_c_is_raised_again(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        launched(tmp_path / "bug", fails(RuntimeError("boom")))
    assert status(tmp_path / "bug")["error"] == "RuntimeError: boom" and (tmp_path / "bug" / "error.txt").is_file()
    assert launched(tmp_path / "job", fails(RuntimeError("boom")), multirun=True) is None
    for multirun in (False, True):
        run = tmp_path / f"ctrl_c_{multirun}"
        with pytest.raises(KeyboardInterrupt):
            launched(run, fails(KeyboardInterrupt()), multirun)
        assert status(run) == {**status(run), "status": "interrupted", "error": SECOND}
        assert not (run / "error.txt").exists()


def test_another_rank_records_nothing_and_ends_as_rank_zero_does(tmp_path):
    other = Launch(OmegaConf.merge(CFG, {"optimized_metric": "val/w1"}), tmp_path, False, folder=None)
    assert other.run(lambda: TrainResult(End.COMPLETED, 10, {"train/d_loss": 0.5})) is None  # rank zero's objective
    assert other.run(lambda: TrainResult(End.TIME_LIMIT, 4)) is None
    with pytest.raises(SystemExit, match="^ganlab: diverged: "):
        other.run(fails(DIVERGED))
    assert Launch(CFG, tmp_path, True, folder=None).run(fails(DIVERGED)) is None
    with pytest.raises(SystemExit) as out:
        other.run(lambda: TrainResult(End.SIGNAL, 3, signum=signal.SIGINT))
    assert out.value.code == 130
    assert list(tmp_path.iterdir()) == []
