"""The values logged since the last row: each taken step adds its detached values, and every
trainer.log_every_n_steps iterations their means become one row (`log`, from GANModule.training_step). The checkpoint keeps them
(a stop at any iteration), so a continued run's next row is the mean of the same steps as an uninterrupted run's."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import torch
from torch import Tensor

from ..log import emit
from .nonfinite import OnNonfinite


class Row:
    def __init__(self):
        self.values: defaultdict[str, list[Tensor]] = defaultdict(list)  # name -> 0-dim values since the last row

    def add(self, logs: Mapping[str, Tensor]) -> None:
        for k, v in logs.items():
            self.values[k].append(v)

    def means(self, reduce=None) -> dict[str, float]:
        """The mean of each name's values (one host sync), `reduce`d (a mean over the DDP ranks) first if given;
        then the row starts empty."""
        if not self.values:
            return {}
        means = torch.stack([torch.stack(v).float().mean() for v in self.values.values()])  # (names,)
        if reduce is not None:
            means = reduce(means)
        row = dict(zip(self.values, means.tolist()))
        self.values.clear()
        return row

    def log(self, m) -> None:
        """Write the row of GANModule `m` at its iteration: the means (under DDP over the global batch, as one
        device sees it), the run's skip and fp16 overflow counts, the augmentation's values (ADA's p)."""
        self.values.update(m.executor.collect())  # the fast executor's means, summed on the device
        reduce = None
        if m.ranks.world > 1:
            reduce = lambda means: m.trainer.strategy.reduce(means, reduce_op="mean")  # noqa: E731
        metrics = self.means(reduce)  # a row of skipped steps only has no losses
        if m.nonfinite.mode is OnNonfinite.SKIP:
            metrics["train/skipped"] = float(m.nonfinite.skipped)  # steps skipped so far in the run, both nets
        if m.loss_scaler is not None:
            metrics["train/overflows"] = float(m.backoff.overflows)  # fp16 steps dropped so far to lower the scale
        if m.augment is not None:
            metrics.update(m.augment.logs())  # ADA's p now (train/ada_p)
        emit(m.trainer, m.iteration, metrics)
        if m.trainer.progress_bar_callback is not None:  # its only reader (callbacks/progress.py); ~5 ms a row
            m.log_dict({k.removeprefix("train/"): v for k, v in metrics.items()}, prog_bar=True, logger=False)

    def state_dict(self) -> dict[str, Tensor]:
        return {k: torch.stack(v).detach().cpu() for k, v in self.values.items() if v}  # (n,) each

    def load_state_dict(self, state: Mapping[str, Tensor], device: torch.device) -> None:
        self.values.clear()
        for k, v in state.items():
            self.values[k] = list(v.to(device).unbind())
