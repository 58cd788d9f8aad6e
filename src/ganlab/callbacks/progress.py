"""How far the run is: the generator iteration against `iterations`, its rate, the ETA and the latest losses.

Lightning's own bar counts batches of an epoch, and ganlab's epochs are unbounded (the module counts iterations),
so it showed `Epoch 0/-2 ... 883/--` and no ETA. This one replaces it (a ProgressBar callback: Lightning then adds
none of its own), on the global-zero rank only, on stdout:

- on a terminal, a tqdm bar advanced at every iteration end:
  `iteration:  40%|████      | 1000/2500 [03:16<04:54, 5.10it/s, d_loss=0.61, g_loss=1.2]`
- otherwise (a SLURM log, `> file`), a line every `every` seconds and one at the end of training:
  `iteration 1000/2500 (40%) | 5.1 it/s | ETA 4:54 | d_loss 0.61 g_loss 1.2`
  (the last line has the time elapsed instead of the ETA).

The losses are the latest logged row's (the module logs them for the bar every trainer.log_every_n_steps
iterations). A resumed run starts at its checkpoint's iteration, and its rate counts only this process's
iterations. The rate is the mean over all of them since training started here, never a recent average: the time
spent in metric evaluations, sample grids and checkpoints is in it, so the ETA counts those that are still to come
in proportion, rather than showing a fast rate between evaluations and a dip after each.

`trainer.enable_progress_bar=false` removes it (train.build_trainer: Lightning refuses a ProgressBar callback when
the bar is off).
"""
from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from lightning.pytorch.callbacks import ProgressBar
from tqdm import tqdm


def clock(seconds: float) -> str:
    """6:32, 1:06:32."""
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def terminal_width(out: TextIO) -> int:
    """Columns of the terminal `out` writes to; 0 when it is no terminal, or one that reports no size (a pty
    nobody sized: tqdm would draw nothing there), where the lines are the safer choice."""
    try:
        return os.get_terminal_size(out.fileno()).columns if out.isatty() else 0
    except (AttributeError, OSError, ValueError):
        return 0


class IterationProgress(ProgressBar):
    clock = staticmethod(time.monotonic)  # tests set their own

    def __init__(self, every: float = 30.0, bar: bool | None = None):
        """every: seconds between lines (stdout not a terminal); bar: None = the bar on a terminal, else lines;
        True / False = always the bar / the lines."""
        super().__init__()
        if every < 0:
            raise ValueError(f"every must be >= 0 seconds, got {every}")
        self.every = float(every)
        self.bar = bar  # None: a tqdm bar when stdout is a terminal, else lines
        self._enabled = True
        self._tqdm: tqdm | None = None
        self._out: TextIO | None = None
        self._start_it = 0  # the iteration this process started at (a resumed run's checkpoint's)
        self._t0 = self._last = 0.0
        self._done = False
        self._shown: dict[str, float] = {}  # the losses on the bar

    # ---- ProgressBar's interface ------------------------------------------------------------------------
    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def print(self, *args, **kwargs) -> None:
        if self._tqdm is not None:
            self._tqdm.write(kwargs.get("sep", " ").join(map(str, args)), file=self._out)
        else:
            print(*args, **kwargs)

    # ---- hooks --------------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        if not self._enabled:
            return
        self._out = sys.stdout
        self._start_it = pl_module.iteration
        self._t0 = self._last = self.clock()
        self._done = False
        self._shown = {}
        width = terminal_width(self._out)
        if self.bar if self.bar is not None else width > 0:
            # smoothing=0: the rate is the mean since the start (see the module's docstring); with `initial` tqdm
            # counts only the iterations after it. A size tqdm cannot read would hide the bar: 100 x 50 then.
            size = {"dynamic_ncols": True} if width else {"ncols": 100, "nrows": 50}
            self._tqdm = tqdm(total=pl_module.iterations, initial=self._start_it, desc="iteration", unit="it",
                              file=self._out, smoothing=0, leave=True, **size)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._enabled or not pl_module.at_iteration_end:
            return
        it = pl_module.iteration
        if self._tqdm is not None:
            losses = self.losses(trainer)
            if losses != self._shown:  # a new logged row
                self._shown = losses
                self._tqdm.set_postfix(losses, refresh=False)
            self._tqdm.update(it - self._tqdm.n)  # tqdm redraws at most every 0.1 s
        elif not trainer.should_stop and self.clock() - self._last >= self.every:  # the last one: on_train_end
            self._line(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._finish(trainer, pl_module)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    # ---- what is shown ------------------------------------------------------------------------------------
    @staticmethod
    def losses(trainer) -> dict[str, float]:
        """The values the module logged with prog_bar=True, as of its latest row: d_loss, g_loss, ..."""
        return {k: float(v) for k, v in trainer.progress_bar_metrics.items()}

    def rate(self, iteration: int) -> float | None:
        """Iterations per second of this process so far (None before its first)."""
        elapsed = self.clock() - self._t0
        done = iteration - self._start_it
        return done / elapsed if done > 0 and elapsed > 0 else None

    def line(self, trainer, pl_module, end: bool = False) -> str:
        """`iteration 500/2500 (20%) | 5.1 it/s | ETA 6:32 | d_loss 0.61 g_loss 1.2`; at the end, the time elapsed
        instead of the ETA."""
        it, total = pl_module.iteration, pl_module.iterations
        rate = self.rate(it)
        parts = [f"iteration {it}/{total} ({100 * it // total}%)", f"{rate:.3g} it/s" if rate else "? it/s"]
        if end:
            parts.append(f"{clock(self.clock() - self._t0)} elapsed")
        else:
            parts.append(f"ETA {clock((total - it) / rate)}" if rate else "ETA ?")
        losses = self.losses(trainer)
        if losses:
            parts.append(" ".join(f"{k} {v:.3g}" for k, v in losses.items()))
        return " | ".join(parts)

    def _line(self, trainer, pl_module, end: bool = False) -> None:
        print(self.line(trainer, pl_module, end), file=self._out, flush=True)
        self._last = self.clock()

    def _finish(self, trainer, pl_module) -> None:
        if not self._enabled or self._done or self._out is None:
            return
        self._done = True
        if self._tqdm is not None:
            self._tqdm.update(pl_module.iteration - self._tqdm.n)
            self._tqdm.close()
            self._tqdm = None
        else:
            self._line(trainer, pl_module, end=True)
