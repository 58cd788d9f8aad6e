"""One way for callbacks to put a picture out: draw it into the run folder, then hand the same picture to each
logger that takes images (W&B, TensorBoard; not CSV) at step = iteration. A picture that cannot be written (disk
full, a read-only folder) costs a warning, once per kind of failure, never the run."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import rank_zero_warn


def last_iteration(pl_module) -> bool:
    """The run ends at this iteration: its `iterations` are done, or the time limit or a signal stopped it
    (pl_module.final, set by callbacks/stop.py before the other callbacks run)."""
    return getattr(pl_module, "final", None) is not None or pl_module.iteration >= pl_module.iterations


def on_cadence(pl_module, every: int) -> bool:
    """This iteration is an `every`-th one or the run's last, however the run ends; the same on every rank."""
    return pl_module.iteration % every == 0 or last_iteration(pl_module)


def due(trainer, pl_module, every: int) -> bool:
    """A picture (or an evaluation) is due on rank zero at the end of every `every`-th iteration and of the
    run's last one."""
    return trainer.is_global_zero and pl_module.at_iteration_end and on_cadence(pl_module, every)


class Publisher:
    def __init__(self, who: str):
        self.who = who  # the callback's name, first word of its warnings
        self.failures: set[tuple[str, int | None]] = set()  # (exception type, errno) already warned about

    def __call__(self, trainer, name: str, it: int, path: Path, draw: Callable[[Path], np.ndarray]) -> bool:
        """draw(path) writes the picture and returns it, uint8 (H, W, 3); the loggers get it as `name`.
        False when it could not be written."""
        try:
            image = draw(path)
        except OSError as e:
            kind = (type(e).__name__, e.errno)
            if kind not in self.failures:
                self.failures.add(kind)
                rank_zero_warn(f"{self.who}: cannot write {path} ({type(e).__name__}: {e}); training goes on "
                               f"(this warning is not repeated for the same failure)")
            return False
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # ganlab.loggers.Guarded (W&B, TensorBoard); CSV has none
                logger.log_image(name, [image], step=it)
        return True
