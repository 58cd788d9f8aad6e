"""How a launch ends, said in one place: lightning-hydra-template's `task_wrapper`, for ganlab's endings.

`Launch(cfg, run_dir, multirun, folder).run(task)` runs the task (train.main's: accept the run folder, then
`train()`) and turns how it ended -- a TrainResult (result.py), or the exception that left it -- into
- `<run_dir>/status.json` and, for an error, `<run_dir>/error.txt` (run_folder.py); rank zero only, which holds the
  folder (`folder`); another DDP rank records nothing and ends as rank zero does;
- one `ganlab: ...` line on stderr (an unexpected error in a single run: its traceback instead; a completed
  single run: its iterations, final val/* metrics and folder);
- what the process does next: a completed run returns the sweeper's value (`optimized_metric`, sweep.py); the
  time limit returns FAILED_OBJECTIVE (exit status 0: the same command continues it); a failed single run exits
  with status 1; a failed job of a multirun returns FAILED_OBJECTIVE, so the sweep goes on (sweep.SweepReport sums
  the jobs up); a signal ends the process, in a multirun too (stop means stop): the handler that was there before
  training gets it (submitit's requeue), else exit status 128 + its number; a second Ctrl-C is raised again.
`refused(e, run_dir, multirun)` is the launch that never held its folder (in use, unwritable, holding a run of
other settings): one line, nothing written.
"""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from .checkpoint_io import WRITE_CAUSES, WriteError, cannot_write
from .config import ConfigError
from .divergence import Diverged
from .result import End, TrainResult
from .run_folder import Claim, write_error
from .sweep import FAILED_OBJECTIVE, objective


@dataclass(frozen=True)
class Ending:
    """How a launch ended, as its run folder and its process say it."""
    end: End
    status: str  # status.json's status (run_folder.STATUSES)
    line: str | None = None  # status.json's error: one line
    say: str | None = None  # the `ganlab: ...` line on stderr; None: nothing (an error: its traceback, single runs)
    error: BaseException | None = None  # the exception that ended the run: error.txt's traceback
    signum: int | None = None  # the signal that stopped the run at an iteration end: handed on (hand_on)


def ending(cfg: DictConfig, ended: TrainResult | BaseException, run_dir: Path,
           again: str = "the same command") -> Ending:
    """The one table from how a run ended to what its launch records and says. ConfigError: one clear line, before
    training. Diverged: NaN/inf, where, the fix, the last good checkpoint (divergence.py). WriteError (or an OSError
    of the same kinds): disk full or no permission, the file, the fix (checkpoint_io.py). KeyboardInterrupt or
    Lightning's exit after it: a second Ctrl-C, which does not wait for the iteration end. Any other exception is a
    bug or a broken environment. `again`: the command that continues the run (train.continue_command)."""
    if isinstance(ended, TrainResult):
        at = f"at iteration {ended.iteration} of {cfg.iterations}"
        if ended.end is End.SIGNAL:  # its checkpoint is written (callbacks/stop.py), its line printed there
            return Ending(End.SIGNAL, "interrupted", f"stopped by {signal.Signals(ended.signum).name} {at}; {again} "
                          f"continues it", f"{again} continues it", signum=ended.signum)
        if ended.end is End.TIME_LIMIT:  # final checkpoint, metrics and samples written
            return Ending(End.TIME_LIMIT, "stopped", f"stopped by the time limit (trainer.max_time="
                          f"{cfg.trainer.max_time}) {at}; {again} continues it",
                          f"stopped by the time limit {at}; {again} continues it")
        scores = ", ".join(f"{k} {v:.4g}" for k, v in ended.metrics.items() if k.startswith("val/"))
        return Ending(End.COMPLETED, "completed", say=f"completed {ended.iteration} iterations"
                      f"{f' ({scores})' if scores else ''}; the run is {run_dir} (status.json, csv/metrics.csv, "
                      f"checkpoints/, samples/): `python report.py {run_dir} --out report.md` sums it up")
    e = ended
    if isinstance(e, OSError) and e.errno in WRITE_CAUSES:
        e = cannot_write(e.filename or run_dir, e)
    if isinstance(e, ConfigError):
        end, status, line, say = End.FAILED, "config_error", str(e), f"config error: {e}"
    elif isinstance(e, Diverged):
        end, status, line, say = End.DIVERGED, "diverged", str(e), f"diverged: {e}"
    elif isinstance(e, WriteError):
        end, status, line, say = End.FAILED, "failed", str(e), str(e)
    elif isinstance(e, Exception):
        end, status, line, say = End.FAILED, "failed", f"{type(e).__name__}: {e}", None
    else:
        end, status, say = End.SIGNAL, "interrupted", None
        line = (f"stopped by a second Ctrl-C (SIGINT) mid-iteration; {again} continues it from its last "
                f"checkpoint")
    return Ending(end, status, (line.strip().splitlines() or [type(e).__name__])[0], say, e)


class Launch:
    """One launch of train.main, on one rank: runs its task, then ends it as `ending` says (the module's docstring)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, multirun: bool, folder: Claim | None,
                 again: str = "the same command"):
        self.cfg, self.run_dir, self.multirun = cfg, run_dir, multirun
        self.folder = folder  # rank zero's hold on the run folder; None: another rank, which records nothing
        self.again = again  # the command that continues the run, for the endings that stop it early

    def run(self, task: Callable[[], TrainResult]) -> float | None:
        result, value = None, None
        try:
            result = task()
            if result.end is End.COMPLETED and self.folder is not None:  # rank zero's evaluations hold the objective
                # a completed run that still lacks the objective is a config_error (sweep.py)
                value = objective(self.cfg, result.metrics)
            end = ending(self.cfg, result, self.run_dir, self.again)
        except BaseException as e:  # every ending writes a status, a second Ctrl-C's included
            end = ending(self.cfg, e, self.run_dir, self.again)
        return self._end(end, result.metrics if result is not None else {}, value)

    def _end(self, end: Ending, metrics: Mapping[str, float], value: float | None) -> float | None:
        if end.error is not None:
            finish_wandb(exit_code=1)  # a run that failed before Lightning's teardown must not stay open
        if self.folder is not None:
            try:
                with uninterrupted():
                    if end.error is not None and end.end is not End.SIGNAL:  # a second Ctrl-C is no error
                        write_error(self.run_dir, end.error)
                    self.folder.write_status(end.status, end.line, metrics)
            except WriteError as unwritten:  # the disk that failed the run may refuse its status too
                if end.error is None:  # a run that ended well fails here: train.main says so (refused)
                    raise
                print(f"ganlab: {unwritten}", file=sys.stderr)
        if end.signum is not None:
            if self.folder is not None:
                print(f"ganlab: {end.say}", file=sys.stderr)
            hand_on(end.signum)
        if end.end is End.TIME_LIMIT:
            if self.folder is not None:
                print(f"ganlab: {end.say}", file=sys.stderr)
            return FAILED_OBJECTIVE
        if end.error is None:
            if end.end is End.COMPLETED and self.folder is not None and not self.multirun:  # a sweep: SweepReport
                print(f"ganlab: {end.say}", file=sys.stderr)
            return value
        if end.end is End.SIGNAL or (end.say is None and not self.multirun):  # a second Ctrl-C; a bug's traceback
            raise end.error
        if self.multirun:
            return FAILED_OBJECTIVE  # the sweep goes on; SweepReport reports this job at its end
        sys.exit(f"ganlab: {end.say}")


def refused(e: Exception, run_dir: Path, multirun: bool) -> float | None:
    """A launch that never held its run folder, or whose folder would not take its status: one line, nothing
    written (ConfigError: the folder holds a run of other settings; FolderInUse, WriteError)."""
    say = f"config error: {e}" if isinstance(e, ConfigError) else str(e)
    if multirun:
        print(f"ganlab: job in {run_dir}: {say}", file=sys.stderr)
        return FAILED_OBJECTIVE
    sys.exit(f"ganlab: {say}")


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C waits while a launch writes how it ended (milliseconds): the status must say so, a second Ctrl-C's
    included. Python allows handlers only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def hand_on(signum: int) -> None:
    """After a signal stopped the run (status written): the handler that was there before training gets it when
    it is a Python one (submitit's: it requeues a SLURM job and exits); otherwise, or if it returns, the process
    exits with 128 + the signal's number, in a multirun too (Ctrl-C, SIGTERM: stop means stop)."""
    handler = signal.getsignal(signum)
    if signum != signal.SIGINT and callable(handler):
        signal.raise_signal(signum)
    sys.exit(128 + signum)


def finish_wandb(exit_code: int) -> None:
    """Close a W&B run left open (W&B keeps one per process; the next multirun job must start its own)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)
