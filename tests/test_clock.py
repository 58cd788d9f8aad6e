"""time/seconds: every metrics.csv row says when it was written in training seconds, a continued run goes on
from its checkpoint's time (not from 0, and not counting the lost launch), and report.py plots the metrics
against it as well as against iterations."""
import csv
import time

import numpy as np
import pytest
import torch

from ganlab.clock import RunClock
from ganlab.report.collect import Group, Run
from ganlab.report.stats import times
from ganlab.train import train

from .conftest import make_cfg

RUN = ["data=ring8", "model=wgan_gp", "data.batch_size=32", "net.g.hidden=16", "net.d.hidden=16", "iterations=6",
       "callbacks.checkpoint.every=3", "callbacks.checkpoint.keep=true"]


def clock_column(out) -> dict[int, float]:
    with open(out / "csv" / "metrics.csv") as f:
        return {int(float(r["step"])): float(r["time/seconds"]) for r in csv.DictReader(f)}


def test_the_clock_goes_on_from_the_checkpoint_and_counts_only_training():
    clock = RunClock()
    clock.start()
    time.sleep(0.05)
    state = clock.state_dict()
    later = RunClock()
    time.sleep(0.1)  # a restart: not training time
    later.start()
    later.load_state_dict(state)
    assert state["seconds"] == pytest.approx(0.05, abs=0.04)
    assert later.seconds() == pytest.approx(state["seconds"], abs=0.02)


def test_rows_carry_the_time_and_a_resumed_run_continues_it(tmp_path):
    train(make_cfg(tmp_path / "full", *RUN))
    full = clock_column(tmp_path / "full")
    assert sorted(full) == list(range(1, 7)) and all(np.diff([full[s] for s in sorted(full)]) > 0)
    ckpt = tmp_path / "full" / "checkpoints" / "iter_0000003.ckpt"
    at = torch.load(ckpt, weights_only=True)["ganlab_time"]["seconds"]
    assert full[3] <= at <= full[4]
    train(make_cfg(tmp_path / "resumed", *RUN, f"ckpt_path={ckpt}"))
    resumed = clock_column(tmp_path / "resumed")
    assert sorted(resumed) == [4, 5, 6] and resumed[4] > at


def test_report_times_are_the_mean_over_seeds_at_the_evaluated_steps(tmp_path):
    def run(seconds):
        steps = np.array([1, 2, 3])
        return Run(path=tmp_path, overrides=[], status="completed",
                   series={"val/w1": (steps, np.ones(3)), "time/seconds": (steps, np.array(seconds, float))})

    group = Group(data="ring8", setting=(), runs=[run([60, 120, 180]), run([120, 240, 360])])
    assert times(group, np.array([1, 3])).tolist() == [1.5, 4.5]  # minutes
    assert times(group, np.array([4])) is None  # a step a run never logged
