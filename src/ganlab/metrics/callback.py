"""Sample-quality metrics during training (metrics/suite.py), every `every` iterations and at the end, on
`n` samples of a fixed latent batch of the generator (EMA if kept), logged as val/* at step = iteration
(log.py). The feature network behind val/fid is logged once as the hyperparameter `metrics/features`.
Feature networks load at setup, so a missing file stops the run before training; an evaluation that fails
later (an unwritable statistics cache, out of memory in the feature network) costs a warning and that
evaluation, never the run."""
from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from ..config import ConfigError
from ..log import emit
from ..nets import fixed_labels
from .suite import Suite, check_options


class Metrics(L.Callback):
    def __init__(self, every: int = 500, **suite):
        if every < 1:
            raise ValueError(f"metrics.every must be >= 1, got {every}")
        check_options(**suite)  # bad values fail when the config is built, before anything runs
        self.every, self.options, self.suite = int(every), suite, None

    def setup(self, trainer, pl_module, stage) -> None:
        try:  # loads the feature networks: a missing file stops the run here, before training
            self.suite = Suite(trainer.datamodule, trainer.strategy.root_device, **self.options)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"metrics: {e}") from None
        if self.suite.features_name and trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_hyperparams({"metrics/features": self.suite.features_name})

    def requested(self, pl_module) -> Tensor | None:
        """The classes pl_module.sample(n) asks for when G is conditioned on the data's classes (cGAN, AC-GAN;
        not InfoGAN's unsupervised categories), else None."""
        if getattr(pl_module, "labels", None) != "all":
            return None
        return fixed_labels(pl_module.ema.model if pl_module.ema is not None else pl_module.generator, self.suite.n)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not pl_module.at_iteration_end:
            return
        it = pl_module.iteration
        if (it % self.every == 0 or it >= pl_module.iterations) and trainer.is_global_zero:
            try:
                values = self.suite(pl_module.sample(self.suite.n), self.requested(pl_module))
            except Exception as e:  # a side channel: the run matters more than one evaluation of it
                rank_zero_warn(f"metrics: the evaluation at iteration {it} failed ({type(e).__name__}: {e}); "
                               f"training goes on without it")
                return
            emit(trainer, it, {f"val/{k}": v for k, v in values.items()})
