"""What a run returns: `train()` gives a TrainResult, for tests, sweeps and the launch (train.main) to read.

How the run ended is decided once, by callbacks/stop.py (completed, time limit, signal), or by an exception that
leaves `train()` (diverged: divergence.Diverged; failed: anything else; a second Ctrl-C: KeyboardInterrupt).
launch.py, train.main's task wrapper, turns either into status.json, one `ganlab: ...` line and the exit status.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class End(str, Enum):
    """How a run ended. train() returns the first three (callbacks/stop.py's decisions) and raises the others;
    launch.py files a second Ctrl-C (a KeyboardInterrupt mid-iteration) under SIGNAL too. A str, so that
    `pl_module.final == "signal"` reads as it did (callbacks/checkpoint.py)."""
    COMPLETED = "completed"  # its `iterations` are done
    TIME_LIMIT = "time_limit"  # trainer.max_time: final checkpoint, metrics and samples; the same command continues
    SIGNAL = "signal"  # SIGINT, SIGTERM, SIGUSR1, SIGUSR2: checkpoint first; the same command continues
    DIVERGED = "diverged"  # NaN/inf (divergence.Diverged): train() raises it
    FAILED = "failed"  # any other exception out of train() (status failed, or config_error for a ConfigError)


@dataclass(frozen=True)
class TrainResult:
    """A run that stopped at an iteration end (End.COMPLETED, TIME_LIMIT or SIGNAL; the others raise)."""
    end: End
    iteration: int  # the last completed iteration: `iterations`, or where the time limit or the signal stopped it
    metrics: dict[str, float] = field(default_factory=dict)  # the final value of every logged metric
    signum: int | None = None  # End.SIGNAL: the signal's number (train.main hands it on)
