"""SIGINT, SIGTERM or SIGUSR1 never lose a run: the run stops at the end of the current iteration with
checkpoints/last.ckpt written there, so `ckpt_path=<it>` resumes exactly (the same losses as a run never stopped).

The signal handler only records the signal. At the next iteration end (n_critic critic steps + the G step, an
exact resume point) every rank writes the checkpoint, one line names it, and the trainer stops. `train()` returns
normally, its metrics holding `interrupted` (the signal's number); `python train.py` then exits with 128 + it
(130 SIGINT, 143 SIGTERM, 138 SIGUSR1), as a shell reports a process the signal killed, so scripts and schedulers
see the run did not finish. A signal during the last iteration changes nothing: that run is complete. A second
Ctrl-C does not wait: the first puts back the previous SIGINT handler (Python's KeyboardInterrupt, which Lightning
turns into its own shutdown, exit status 1).

Lightning's own handlers: the Trainer installs a SIGTERM handler for every fit, which makes its loops raise
SIGTERMException at the end of the current *batch* (mid-iteration, without a checkpoint), and under SLURM
(auto_requeue, on by default there) a SIGUSR1 handler that saves hpc_ckpt_N.ckpt from inside the handler
(mid-step) and runs `scontrol requeue`. These handlers are installed after `setup` and before `on_train_start`;
so `setup` turns SLURM's auto-requeue off and `on_train_start` puts ganlab's handlers over Lightning's (not
chained: theirs would stop the run mid-iteration). `on_train_end` / `on_exception` put Lightning's back, and
Lightning's teardown then restores those from before the fit.

SLURM: `sbatch --requeue --signal=USR1@90` with `srun python train.py ...` signals the job step 90 s before its
time limit (pre-emption sends SIGTERM); the run stops with its checkpoint and exit status 138 (143), and the job
resumes with `ckpt_path=<out_dir>/checkpoints/last.ckpt` when it is requeued (by SLURM on pre-emption, by the
job script after a time-limit signal).
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment

from .checkpoint import save_good

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Interrupt(L.Callback):
    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.signum: int | None = None  # the first signal received
        self._previous: dict[int, object] = {}  # handlers to put back when training ends

    def setup(self, trainer, pl_module, stage) -> None:
        env = trainer._accelerator_connector.cluster_environment  # what Lightning's signal connector reads next
        if isinstance(env, SLURMEnvironment):
            env.auto_requeue = False

    def on_train_start(self, trainer, pl_module) -> None:
        self.signum = None
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}

    def _handle(self, signum: int, frame) -> None:
        """Runs between two Python bytecodes of the main thread: record the signal, nothing else."""
        if self.signum is None:
            self.signum = signum
        if signum == signal.SIGINT:  # the next Ctrl-C acts at once
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT] or signal.SIG_DFL)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not pl_module.at_iteration_end or pl_module.iteration >= pl_module.iterations:
            return
        signum = self.signum or 0
        if trainer.world_size > 1:  # a signal to any rank stops all at this iteration, else DDP waits forever
            signum = int(trainer.strategy.reduce(torch.tensor(signum, device=pl_module.device), reduce_op="max"))
        if not signum:
            return
        path = self.dirpath / "last.ckpt"
        save_good(trainer, pl_module, path)  # never over the last good checkpoint with NaN weights
        if trainer.is_global_zero:
            print(f"ganlab: interrupted by {signal.Signals(signum).name} at iteration {pl_module.iteration}; "
                  f"checkpoint {path}; resume with ckpt_path={path}", flush=True)
        trainer.callback_metrics["interrupted"] = torch.tensor(float(signum))  # train.py's exit status
        trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(s, handler)
        self._previous = {}
