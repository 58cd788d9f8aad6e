"""Clusters and sweeps, with real processes: a SLURM-style time-limit signal (SIGUSR2, submitit's) to a job of
hydra/launcher=submitit_local checkpoints it, submitit requeues it, and the requeued job continues the same run
(its folder, its metrics.csv, its W&B run); a sweep relaunched into its folder skips the jobs that completed and
continues the interrupted one."""
import json
import os
import signal
import time
from pathlib import Path

import pytest

from .. import launcher
from ..conftest import read_metrics

ROOT = Path(__file__).resolve().parents[2]
RUN = ["data=ring8", "model=wgan_gp", "data.batch_size=32", "net.g.hidden=16", "net.d.hidden=16", "iterations=300",
       "trainer.log_every_n_steps=5", "trainer.enable_progress_bar=false", "metrics=none",
       "callbacks.checkpoint.every=50"]


def env(**extra: str) -> dict:
    # a fresh environment, as a cluster job has: not a W&B service this pytest process may have started
    return {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "OMP_NUM_THREADS": "1", **extra}


def steps(run: Path) -> list[int]:
    return [int(r["step"]) for r in read_metrics(run) if "train/d_loss" in r]


def last_step(run: Path) -> int:
    csv = run / "csv" / "metrics.csv"
    lines = csv.read_text().splitlines() if csv.is_file() else []
    return int(float(lines[-1].split(",")[0])) if len(lines) > 1 and lines[-1][:1].isdigit() else 0


def wait(until, proc: launcher.Launched, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not until():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def job_processes(folder: Path) -> list[int]:
    """PIDs of submitit's job processes (`python -m submitit.core._submit <folder>/.submitit/...`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "submitit.core._submit" in cmd and any(str(folder) in part for part in cmd):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_submitit_time_limit_signal_checkpoints_requeues_and_the_job_continues_its_run(tmp_path):
    log = tmp_path / "sweep.log"
    sweep = launcher.popen("train.py", "-m", "hydra/launcher=submitit_local", *RUN, "logger=wandb",
                           f"hydra.sweep.dir={tmp_path}", env=env(WANDB_MODE="offline"), stdout=log)
    run = tmp_path / "0"
    wait(lambda: last_step(run) >= 60 and job_processes(tmp_path), sweep, log)
    first = job_processes(tmp_path)
    for pid in first:  # what SLURM sends `signal_delay_s` before the time limit (sbatch --signal=USR2@...)
        os.kill(pid, signal.SIGUSR2)
    assert sweep.wait(timeout=600) == 0, log.read_text()[-3000:]

    logs = "".join(p.read_text() for p in (tmp_path / ".submitit").rglob("*_log.*"))  # submitit's and the job's
    assert "ganlab: interrupted by SIGUSR2 at iteration" in logs, logs[-3000:]
    assert "Requeued job" in logs and "ganlab: continuing the run in" in logs, logs[-3000:]
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    assert json.loads((tmp_path / "sweep.json").read_text())["completed"] == 1
    assert steps(run) == list(range(5, 301, 5))  # one history, no duplicate, no gap
    segments = sorted((run / "wandb").glob("offline-run-*"))
    assert len(segments) == 2 and len({p.name.rsplit("-", 1)[1] for p in segments}) == 1  # one W&B run


@pytest.mark.slow
def test_a_relaunched_sweep_skips_completed_jobs_and_continues_the_interrupted_one(tmp_path):
    cmd = ["train.py", "-m", *RUN, "seed=0,1", f"hydra.sweep.dir={tmp_path}"]
    log = tmp_path / "first.log"
    first = launcher.popen(*cmd, env=env(WANDB_MODE="disabled"), stdout=log)
    wait(lambda: (tmp_path / "0" / "status.json").is_file() and last_step(tmp_path / "1") >= 60, first, log)
    first.send_signal(signal.SIGTERM)  # job 1 stops at an iteration end with its checkpoint; Ctrl-C-like: the sweep ends
    assert first.wait(timeout=120) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    assert json.loads((tmp_path / "1" / "status.json").read_text())["status"] == "interrupted"
    done = tmp_path / "0" / "checkpoints" / "last.ckpt"
    stamp = done.stat().st_mtime_ns

    again = launcher.run(*cmd, env=env(WANDB_MODE="disabled"), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"ganlab: {tmp_path / '0'} holds this run, completed (status.json): nothing to train" in again.stderr
    assert f"ganlab: continuing the run in {tmp_path / '1'}" in again.stderr
    assert done.stat().st_mtime_ns == stamp  # job 0 not trained again
    for job in ("0", "1"):
        assert json.loads((tmp_path / job / "status.json").read_text())["status"] == "completed"
        assert steps(tmp_path / job) == list(range(5, 301, 5))
    assert json.loads((tmp_path / "sweep.json").read_text())["completed"] == 2
