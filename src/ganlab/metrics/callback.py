"""Sample-quality metrics during training (metrics/suite.py), every `every` iterations and at the end, on
`n` samples of a fixed latent batch of the generator (EMA if kept), logged as val/* at step = iteration
(log.py). The feature network behind val/fid is logged once as the hyperparameter `metrics/features`.
Feature networks load at setup, so a missing file stops the run before training; an evaluation that fails
later (an unwritable statistics cache, out of memory in the feature network) costs a warning and that
evaluation, not the run - unless one of its metrics is the run's `objective` (the root config's
optimized_metric, which train.py passes): then the run fails (status.json: failed), since a sweep must not
rank a trial by a value that was never computed."""
from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from ..config import ConfigError
from ..labels import Labels
from ..log import emit
from ..callbacks.publish import due
from ..nets import fixed_labels
from . import registry
from .suite import Suite, check_options


class Metrics(L.Callback):
    def __init__(self, every: int = 500, objective: str | None = None, **suite):
        if every < 1:
            raise ValueError(f"metrics.every must be >= 1, got {every}")
        check_options(**suite)  # bad values fail when the config is built, before anything runs
        self.every, self.options, self.suite = int(every), suite, None
        self.objective = objective if registry.find(objective) else None  # None: no failed evaluation fails the run
        self.last: tuple[int, dict[str, float]] | None = None  # (iteration, {val/name: value}) of the last
        # evaluation that succeeded, on rank zero (callbacks/checkpoint.py's best reads it)

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
        if pl_module.labels is not Labels.ALL:
            return None
        return fixed_labels(pl_module.ema.model if pl_module.ema is not None else pl_module.generator, self.suite.n)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if due(trainer, pl_module, self.every):
            try:
                values = self.suite(pl_module.sample(self.suite.n), self.requested(pl_module))
            except Exception as e:  # a side channel: the run matters more than one evaluation of it ...
                failed = f"metrics: the evaluation at iteration {it} failed ({type(e).__name__}: {e})"
                if self.objective is not None:  # ... unless the run is scored by it
                    raise RuntimeError(f"{failed}, and optimized_metric={self.objective} is one of its "
                                       f"metrics") from e
                rank_zero_warn(f"{failed}; training goes on without it")
                return
            self.last = (it, {f"val/{k}": v for k, v in values.items()})
            emit(trainer, it, self.last[1])
