"""What a checkpoint needs besides the module to resume exactly and to stand alone.

- RNG states of Python, NumPy and torch (CPU and every CUDA device): Lightning does not save them.
  Stored as tensors and plain values so the file loads with torch.load(weights_only=True). Every rank's: under
  DDP the ranks' streams are in step (ranks.py) only as long as nothing draws on some ranks and not others (a
  callback, a metric, a library), so each rank's states are gathered at save time (every rank saves: Lightning's
  save_checkpoint is collective) and each rank restores its own. A checkpoint of another world size, or one
  holding a single state (saved before this), gives rank 0's state to every rank, with a warning.
- The run's resolved config, the data's sample shape and the classes G is conditioned on (they depend on the
  data), so sample.py / evaluate.py rebuild the generator from the checkpoint alone.
- The rows of csv/metrics.csv up to the checkpoint (`metrics_csv`, the file's text), so a continued run rebuilds
  a file that was lost or damaged meanwhile (csv_logger.py).
"""
from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_warn

from ..csv_logger import CSVLog


def get_rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _ranks() -> tuple[int, int]:
    """(rank, world) of the process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def set_rng_state(state: dict) -> None:
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunState(L.Callback):
    def __init__(self, config: dict):
        self.config = config
        self.start = get_rng_state()  # the streams as set-up left them: made last, just before fit

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Lightning re-seeds every DDP process once its process group is up (after the nets were built); the run
        # goes on from the streams set-up left instead, so N ranks draw what one process draws (ranks.py). A
        # resumed run's checkpoint states are loaded after this.
        set_rng_state(self.start)

    def state_dict(self) -> dict:
        """{"rng": [rank 0's states, rank 1's, ...]}. Called on every rank (a collective under DDP)."""
        world = _ranks()[1]
        if world == 1:
            return {"rng": [get_rng_state()]}
        states = [None] * world
        dist.all_gather_object(states, get_rng_state())
        return {"rng": states}

    def load_state_dict(self, state: dict) -> None:
        rank, world = _ranks()
        states = state["rng"]
        if isinstance(states, dict):  # a checkpoint from before every rank's states were saved: rank 0's only
            states = [states]
        if len(states) != world:
            rank_zero_warn(f"ckpt_path: the checkpoint holds the random states of {len(states)} rank(s), this run "
                           f"has {world}: every rank goes on from rank 0's, so a draw that differed between the "
                           f"saved run's ranks does not resume exactly")
            states = states[:1] * world
        set_rng_state(states[rank])

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["config"] = self.config
        checkpoint["shape"] = list(trainer.datamodule.shape)
        checkpoint["generator_classes"] = int(getattr(pl_module.generator, "num_classes", 0))  # G's labels: 0 = none
        checkpoint["native_side"] = getattr(pl_module.generator, "native", None)  # net.g.native's side (nets/dcgan.py)
        for logger in trainer.loggers:
            if isinstance(logger, CSVLog):
                checkpoint["metrics_csv"] = logger.snapshot()
