"""How a run ends: after its `iterations`, at its time limit (`trainer.max_time`), or on a signal (SIGINT,
SIGTERM, SIGUSR1, SIGUSR2). This callback alone decides it (train() adds it to every run, whatever the callbacks
group holds: without it a run would never end). Every ending lands on an iteration end (n_critic critic steps +
the G step, an exact resume point) and is the run's last iteration for every callback: `pl_module.final` names
the reason (result.End), so the final checkpoint, the final metrics and the final sample grid are all written
there (callbacks/checkpoint.py, callbacks/publish.py `due`, metrics/callback.py). This callback runs first at each
iteration end (train.py puts it first) so the others see the decision; Lightning runs checkpoint callbacks last,
after the metrics. The decision stays on the callback (`end`, `iteration`, `signum`): train() returns it in its
TrainResult (result.py).

Signals: the handler only records the signal. At the next iteration end every rank first writes
checkpoints/last.ckpt (a signal may be followed by SIGKILL: the checkpoint must not wait for the metrics), then
the final metrics and grid follow. `train()` returns normally with End.SIGNAL and the signal's number;
`train.main` (launch.py) records status `interrupted` and then hands the signal on: to the handler that was there before
training when it is a Python one (submitit's, which requeues a SLURM job: hydra/launcher=slurm), else it exits
with 128 + the signal's number, as a shell reports a process the signal killed. A signal during the last
iteration changes nothing: that run is complete. A second Ctrl-C does not wait: the first puts back the previous
SIGINT handler (Python's KeyboardInterrupt, which Lightning turns into its own shutdown, exit status 1).

Time limit: `trainer.max_time` (DD:HH:MM:SS, as Lightning spells it) counts this process's training time, from
the start of training; ganlab takes it from Lightning (whose Timer stops at any batch end, mid-iteration,
without a checkpoint). The run then stops with status `stopped` ("time limit at iteration N of M"); running
the same command again continues it (train.py) for another max_time.

Lightning's own handlers: the Trainer installs a SIGTERM handler for every fit that makes its loops raise at
the end of the current *batch* (mid-iteration). Those are installed after `setup` and before
`on_train_start`, so `on_train_start` puts ganlab's handlers over them (not chained); `on_train_end` /
`on_exception` put them back. Under SLURM, Lightning's SIGUSR1 auto-requeue is off (train.build_trainer).
"""
from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch

from ..result import End
from .checkpoint import save_good

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
TIME_LIMIT = -1  # the reason code of the time limit, beside the signals' numbers (all ranks reduce the max)


def parse_max_time(value) -> float | None:
    """trainer.max_time: "DD:HH:MM:SS" or a mapping of timedelta's keys (Lightning's two forms) -> seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"trainer.max_time={value!r} is not DD:HH:MM:SS: e.g. trainer.max_time=00:04:00:00 "
                             f"for four hours")
        days, hours, minutes, seconds = (int(p) for p in parts)
        seconds = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    elif hasattr(value, "items"):
        try:
            seconds = timedelta(**dict(value)).total_seconds()
        except TypeError as e:
            raise ValueError(f"trainer.max_time={dict(value)}: {e}: use days, hours, minutes, seconds") from None
    else:
        raise ValueError(f"trainer.max_time={value!r} is not DD:HH:MM:SS: e.g. trainer.max_time=00:04:00:00")
    if seconds <= 0:
        raise ValueError(f"trainer.max_time={value} must be longer than 0: e.g. trainer.max_time=00:04:00:00")
    return seconds


class Stop(L.Callback):
    def __init__(self, dirpath: str | None, max_time=None):
        # checkpoints/: a signal writes last.ckpt there at once. None: signals are not taken (a trainer built
        # outside train(), as bench/step.py's: Ctrl-C stays Python's KeyboardInterrupt)
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.max_time = parse_max_time(max_time)  # seconds of training in this process, or None
        self.end: End | None = None  # the decision, once made
        self.iteration = 0  # the iteration it was made at: the run's last
        self.signum: int | None = None  # the first signal received; End.SIGNAL: the one that stopped the run
        self.previous: dict[int, object] = {}  # the handlers before training: put back at its end
        self.start = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.end, self.iteration, self.signum, self.start = None, 0, None, time.monotonic()
        if self.dirpath is not None and threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in SIGNALS}  # Python allows them only there

    def _handle(self, signum: int, frame) -> None:
        """Runs between two Python bytecodes of the main thread: record the signal, nothing else."""
        if self.signum is None:
            self.signum = signum
        if signum == signal.SIGINT:  # the next Ctrl-C acts at once
            signal.signal(signal.SIGINT, self.previous.get(signal.SIGINT) or signal.SIG_DFL)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not pl_module.at_iteration_end:
            return
        if pl_module.iteration >= pl_module.iterations:
            reason = 0
        else:
            reason = self.signum or 0
            if not reason and self.max_time is not None and time.monotonic() - self.start >= self.max_time:
                reason = TIME_LIMIT
            # a signal to any rank stops all at this iteration, else DDP waits forever; the time limit too (each
            # rank has its own clock). Neither can come without handlers or a limit: no collective then
            if trainer.world_size > 1 and (self.previous or self.max_time is not None):
                code = 100 + reason if reason > 0 else int(reason == TIME_LIMIT)  # one all-reduce: a signal wins
                code = int(trainer.strategy.reduce(torch.tensor(code, device=pl_module.device), reduce_op="max"))
                reason = code - 100 if code > 100 else TIME_LIMIT if code == 1 else 0
            if not reason:
                return
        self.end = End.COMPLETED if reason == 0 else End.TIME_LIMIT if reason == TIME_LIMIT else End.SIGNAL
        self.iteration = pl_module.iteration
        pl_module.final = self.end  # the other callbacks' "this is the run's last iteration" (callbacks/publish.py)
        trainer.should_stop = True
        if reason > 0:
            self.signum = reason
            # the checkpoint first: a signal may be followed by SIGKILL before the final metrics are done
            path = self.dirpath / "last.ckpt"
            save_good(trainer, pl_module, path)
            if trainer.is_global_zero:
                print(f"ganlab: interrupted by {signal.Signals(reason).name} at iteration {pl_module.iteration}; "
                      f"checkpoint {path}", flush=True)
        elif reason == TIME_LIMIT and trainer.is_global_zero:
            print(f"ganlab: time limit (trainer.max_time) reached at iteration {pl_module.iteration} of "
                  f"{pl_module.iterations}; final checkpoint, metrics and samples follow", flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for s, handler in self.previous.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(s, handler)
        self.previous = {}
