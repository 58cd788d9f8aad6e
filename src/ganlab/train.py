"""`python train.py [overrides]`: compose the config, build every object (failing before training on bad
input), train, return the final metrics. `train(cfg)` is the function tests and sweeps call."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from .callbacks.run_state import RunState
from .checkpoint_io import AtomicCheckpointIO, read_checkpoint
from .config import ConfigError, build, check_config, check_critic, check_optimizer
from .divergence import Diverged

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def build_module(cfg: DictConfig, datamodule) -> L.LightningModule:
    """Nets, loss, regularizers and optimizers from the config, assembled into the model's module. A variant
    that needs class labels is refused data without them here, before anything trains."""
    try:
        module_cls = get_class(cfg.model._target_)
    except (ImportError, ValueError) as e:
        raise ConfigError(f"model._target_: {e}") from None
    data_classes = datamodule.num_classes
    labelled = getattr(datamodule, "labelled", None)  # labels per class kept (data.labelled); None: all
    variant = (HydraConfig.get().runtime.choices.get("model") if HydraConfig.initialized() else None) or module_cls.__name__
    if module_cls.labels is not None and not data_classes:
        raise ConfigError(f"model={variant} trains on class labels, but data={type(datamodule).__name__} has none: "
                          f"use a labelled set (fashion_mnist, mnist, cifar10, or a folder of class subfolders)")
    if module_cls.labels == "all" and labelled is not None:
        raise ConfigError(f"model={variant} needs the label of every image, but data.labelled={labelled} keeps only "
                          f"some: remove data.labelled (it is for model=sgan)")
    if module_cls.labels == "subset" and getattr(datamodule, "labelled_subset", None) is None:
        raise ConfigError(f"model={variant} needs a labelled subset of an on-device image set (data.labelled=N); "
                          f"data={type(datamodule).__name__} cannot give one: use fashion_mnist, mnist or cifar10")
    if hasattr(datamodule, "held_out") != module_cls.translates:
        raise ConfigError(f"data={type(datamodule).__name__} holds two image domains (batches of A and B images): train "
                          f"it with model=cyclegan" if not module_cls.translates else
                          f"model={variant} translates between two image domains: use data=unpaired (folders A/B) "
                          f"or data=sneaker2boot")
    g_classes, d_classes = module_cls.net_classes(cfg.model, data_classes)
    pack = int(cfg.model.get("pack", 1))
    if pack > 1 and d_classes:
        raise ConfigError(f"model.pack={pack} packs samples of different classes into one critic input, but this "
                          f"critic reads class labels: set model.pack=1")
    shape = datamodule.shape
    generator = build(cfg.net.g, "net.g", shape=shape, **({"num_classes": g_classes} if g_classes else {}))
    d_shape = (shape[0] * pack, *shape[1:])  # PacGAN: m samples side by side along the first axis
    discriminator = build(cfg.net.d, "net.d", shape=d_shape, **({"num_classes": d_classes} if d_classes else {}))
    regularizers = {name: build(node, f"regularizer.{name}") for name, node in (cfg.get("regularizer") or {}).items()}
    check_critic(discriminator, regularizers)
    optim_g, optim_d = build(cfg.optim.g, "optim.g"), build(cfg.optim.d, "optim.d")
    check_optimizer(optim_g, "optim.g")
    check_optimizer(optim_d, "optim.d")
    extra = {"num_classes": data_classes} if module_cls.labels is not None else {}
    return build(cfg.model, "model", generator=generator, discriminator=discriminator, loss=build(cfg.loss, "loss"),
                 regularizers=regularizers, optim_g=optim_g, optim_d=optim_d, iterations=cfg.iterations, **extra)


def train(cfg: DictConfig) -> dict[str, float]:
    check_config(cfg)
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None:  # a missing, damaged or foreign file fails here, before anything is built
        read_checkpoint(ckpt, "ckpt_path")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.data, "data", seed=cfg.seed)
    module = build_module(cfg, datamodule)
    callbacks = [build(node, f"callbacks.{name}") for name, node in (cfg.get("callbacks") or {}).items()]
    if cfg.get("metrics") and "_target_" in cfg.metrics:  # metrics=none leaves at most an experiment's settings
        callbacks.append(build(cfg.metrics, "metrics"))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    callbacks.append(RunState(resolved))
    loggers = [build(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()]
    for logger in loggers:  # the resolved config, once: W&B's run config, TensorBoard's and CSV's hparams.yaml
        logger.log_hyperparams(resolved)
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                    plugins=[AtomicCheckpointIO()], default_root_dir=cfg.out_dir)
    with warnings.catch_warnings():
        # Batches are drawn as a function of the step, so resuming mid-"epoch" is exact (data/base.py).
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # the EMA copy, on purpose
        # weights_only: a checkpoint is tensors and plain values only (callbacks/run_state.py), never code
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        metrics = train(cfg)
    except ConfigError as e:  # one clear line, no stack trace, before training started
        sys.exit(f"ganlab: config error: {e}")
    except Diverged as e:  # NaN/inf: where, the fix, the last good checkpoint (divergence.py); no stack trace
        sys.exit(f"ganlab: diverged: {e}")
    if "interrupted" in metrics:  # stopped by a signal, checkpoint written (callbacks/interrupt.py): 128 + signum
        sys.exit(128 + int(metrics["interrupted"]))
