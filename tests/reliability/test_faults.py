"""Fault injection: a toy training killed again and again, relaunched each time with the same command, ends with
the weights and the metrics.csv rows of a run never stopped (resume.py, csv_logger.py, callbacks/stop.py).

Kills come at random moments (a seeded draw of the delay after the run has logged new rows) and once inside a
checkpoint write (crash_train.py: SIGKILL after the temporary file is written, before its rename). After every
kill last.ckpt loads; at the end no temporary file is left. Then the same with SIGTERM and with SLURM's signal
(SIGUSR2, submitit's default), which also write the final metrics and sample grid at the iteration they stop
at: the only rows an uninterrupted run lacks are those val/* rows, at exactly those iterations."""
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from .. import launcher
from ..conftest import read_metrics

ROOT = Path(__file__).resolve().parents[2]
CRASH = Path(__file__).with_name("crash_train.py")
# WGAN-GP, 5 critic steps per iteration: most moments are mid-iteration. Metrics and grids every 50 iterations,
# a checkpoint every 20, a row every 5: kills land between checkpoints, rows and evaluations alike.
RUN = ["data=ring8", "model=wgan_gp", "data.batch_size=32", "net.g.hidden=16", "net.d.hidden=16", "iterations=200",
       "trainer.log_every_n_steps=5", "trainer.enable_progress_bar=false", "metrics.every=50", "metrics.toy_n=500",
       "callbacks.checkpoint.every=20", "callbacks.samples.every=50"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def launch(out: Path, kill_in_save: int = 0) -> launcher.Launched:
    """The same command every time (crash_train.py is train.py that may die inside a checkpoint write), with a
    $TMPDIR of its own (OUT.tmpdir): checkpoints are never staged there."""
    tmpdir = Path(f"{out}.tmpdir")
    tmpdir.mkdir(exist_ok=True)
    return launcher.popen(CRASH, *RUN, f"hydra.run.dir={out}", stdout=f"{out}.log",
                          env={**ENV, "GANLAB_TEST_KILL_IN_SAVE": str(kill_in_save), "TMPDIR": str(tmpdir)})


def last_step(out: Path) -> int:
    csv = out / "csv" / "metrics.csv"
    rows = csv.read_text().splitlines() if csv.is_file() else []
    return int(float(rows[-1].split(",")[0])) if len(rows) > 1 and rows[-1][:1].isdigit() else 0


def wait_for_progress(proc: launcher.Launched, out: Path, after: int) -> bool:
    """Until the run logged a row past `after`; False if it ended first."""
    deadline = time.monotonic() + 180
    while last_step(out) <= after:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, Path(f"{out}.log").read_text()[-3000:]
        time.sleep(0.02)
    return True


def check_after_kill(out: Path) -> None:
    ckpt = out / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        torch.load(ckpt, weights_only=True)  # always a whole file


def no_temporary_files(out: Path) -> None:
    assert not [p for p in out.rglob("*.tmp")], list(out.rglob("*.tmp"))


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def rows(out: Path) -> dict[int, dict[str, float]]:
    """metrics.csv by step (a step's losses and its evaluation are two rows); a value logged twice fails."""
    table: dict[int, dict[str, float]] = {}
    for row in read_metrics(out):
        step = int(row.pop("step"))
        assert not set(row) & set(table.get(step, {})), f"step {step} logged twice: {row}"
        table.setdefault(step, {}).update(row)
    return table


def assert_same_run(full: Path, out: Path, stops: set[int] = frozenset()) -> None:
    a, b = rows(full), rows(out)
    assert set(a) <= set(b) and set(b) - set(a) <= stops, (sorted(a), sorted(b))
    for step, values in b.items():
        assert {k: v for k, v in values.items() if k in a.get(step, {})} == a.get(step, {}), f"step {step}"
        extra = set(values) - set(a.get(step, {}))  # only a stop's own evaluation
        assert not extra or (step in stops and all(k.startswith("val/") for k in extra)), (step, extra)
    wa, wb = weights(full), weights(out)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "full"
    assert launch(out).wait(timeout=600) == 0, Path(f"{out}.log").read_text()[-3000:]
    return out


@pytest.mark.slow
def test_sigkill_at_random_moments_and_inside_a_checkpoint_write(tmp_path, full):
    out, draw = tmp_path / "killed", random.Random(0)
    # the 3rd checkpoint write dies between the temporary file and its rename
    proc = launch(out, kill_in_save=3)
    assert proc.wait(timeout=300) == -signal.SIGKILL
    assert list((out / "checkpoints").glob(".last.ckpt.*.tmp")), "the kill did not land inside the write"
    assert not list(Path(f"{out}.tmpdir").iterdir())  # nothing staged in $TMPDIR, left there by the kill
    check_after_kill(out)
    kills = 1
    for _ in range(2):  # then at random moments, each after the run made some progress
        before = last_step(out)
        proc = launch(out)
        if not wait_for_progress(proc, out, before):
            break
        time.sleep(draw.uniform(0.0, 0.6))
        proc.kill()
        proc.wait()
        check_after_kill(out)
        kills += 1
    proc = launch(out)
    assert proc.wait(timeout=600) == 0, Path(f"{out}.log").read_text()[-3000:]
    assert kills >= 2
    assert '"completed"' in (out / "status.json").read_text()
    no_temporary_files(out)
    assert_same_run(full, out)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=lambda s: s.name)
def test_signals_stop_with_final_metrics_and_the_same_command_continues(tmp_path, full, signum):
    out = tmp_path / "signalled"
    proc = launch(out)
    assert wait_for_progress(proc, out, 0)
    proc.send_signal(signum)
    assert proc.wait(timeout=300) == 128 + signum, Path(f"{out}.log").read_text()[-3000:]
    status = (out / "status.json").read_text()
    assert '"interrupted"' in status and f"stopped by {signum.name} at iteration " in status and "of 200" in status
    n = int(status.split(f"stopped by {signum.name} at iteration ")[1].split()[0])
    check_after_kill(out)
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["ganlab_steps"]["g_steps"] == n
    assert (out / "samples" / f"iter_{n:07d}.png").is_file()  # the final grid at the stop
    assert "val/w1" in rows(out)[n]  # the final metrics at the stop
    stops = {n}
    assert launch(out).wait(timeout=600) == 0, Path(f"{out}.log").read_text()[-3000:]
    no_temporary_files(out)
    assert_same_run(full, out, stops)


@pytest.mark.slow
def test_the_time_limit_stops_with_final_metrics_and_the_same_command_continues(tmp_path, full):
    """trainer.max_time: each launch trains 2 s, stops at an iteration end with its final checkpoint, metrics and
    grid (status `stopped`, exit status 0), and the same command goes on until the run completes."""
    out, stops = tmp_path / "timed", set()
    for _ in range(40):  # about 3 launches here; a slower machine needs more
        proc = launcher.popen(CRASH, *RUN, "trainer.max_time=00:00:00:02", f"hydra.run.dir={out}", env=ENV,
                              stdout=f"{out}.log")
        assert proc.wait(timeout=300) == 0, Path(f"{out}.log").read_text()[-3000:]
        status = (out / "status.json").read_text()
        if '"completed"' in status:
            break
        assert '"stopped"' in status and "stopped by the time limit (trainer.max_time=00:00:00:02) at iteration" \
            in status and "of 200" in status, status
        n = int(status.split(" at iteration ")[1].split()[0])
        assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["ganlab_steps"]["g_steps"] == n
        assert (out / "samples" / f"iter_{n:07d}.png").is_file() and "val/w1" in rows(out)[n]
        stops.add(n)
    assert stops and '"completed"' in (out / "status.json").read_text()
    no_temporary_files(out)
    assert_same_run(full, out, stops)
