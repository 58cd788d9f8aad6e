"""`python train.py [overrides]`: compose the config, build every object (failing before training on bad
input), train, return how the run ended with its final metrics (result.TrainResult). `train(cfg)` is the function
tests and sweeps call; `main` is the command line, whose launch records the run (launch.py)."""
from __future__ import annotations

import functools
import shlex
import sys
import warnings
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Checkpoint, ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from . import resume, run_folder
from .augment import build_augment
from .callbacks.run_state import RunState
from .callbacks.stop import Stop
from .checkpoint_io import AtomicCheckpointIO, WriteError, read_checkpoint
from .config import ConfigError, build, check_config, check_critic, check_optimizer
from .csv_logger import CSVLog
from .fast import check_fast
from .labels import Labels
from .launch import Launch, refused
from .nets import side_options
from .precision import resolve_precision
from .result import End, TrainResult
from .run_folder import FolderInUse
from .strategy import strategy_for, world_size
from .sweep import check_objective, objective

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def option_name(group: str, target: str) -> str:
    """How the command line names the option of `group` that builds `target`: Hydra's choice in a run, else the
    one file of conf/<group>/ that builds it (a config composed without Hydra's run: tests, sweeps' tools), else
    the class's name."""
    if HydraConfig.initialized() and (choice := HydraConfig.get().runtime.choices.get(group)):
        return choice
    builds = [name for name, built in _group_targets(group) if built == target]
    return builds[0] if len(builds) == 1 else str(target).rsplit(".", 1)[-1]


@functools.cache
def _group_targets(group: str) -> tuple[tuple[str, str | None], ...]:
    """(option, the _target_ it builds) for each file of conf/<group>/, read once per process."""
    key = f"{group}._target_" if group == "model" else "_target_"  # a model preset nests its node under model:
    files = sorted((Path(CONF_DIR) / group).glob("*.yaml"))
    return tuple((p.stem, OmegaConf.select(OmegaConf.load(p), key)) for p in files)


def build_module(cfg: DictConfig, datamodule) -> L.LightningModule:
    """Nets, loss, regularizers and optimizers from the config, assembled into the model's module. A variant
    that needs class labels is refused data without them here, before anything trains."""
    try:
        module_cls = get_class(cfg.model._target_)
    except (ImportError, ValueError) as e:
        raise ConfigError(f"model._target_: {e}") from None
    data_classes = datamodule.num_classes
    labelled = getattr(datamodule, "labelled", None)  # labels per class kept (data.labelled); None: all
    variant = option_name("model", cfg.model._target_)
    if module_cls.labels is not Labels.NONE and not data_classes:
        raise ConfigError(f"model={variant} trains on class labels, but data={type(datamodule).__name__} has none: "
                          f"use a labelled set (fashion_mnist, mnist, cifar10, or a folder of class subfolders)")
    if module_cls.labels is Labels.ALL and labelled is not None:
        raise ConfigError(f"model={variant} needs the label of every image, but data.labelled={labelled} keeps only "
                          f"some: remove data.labelled (it is for model=sgan)")
    if module_cls.labels is Labels.SUBSET and getattr(datamodule, "labelled_subset", None) is None:
        raise ConfigError(f"model={variant} needs a labelled subset of an on-device image set (data.labelled=N); "
                          f"data={type(datamodule).__name__} cannot give one: use fashion_mnist, mnist or cifar10")
    if hasattr(datamodule, "held_out") != module_cls.translates:
        raise ConfigError(f"data={type(datamodule).__name__} holds two image domains (batches of A and B images): "
                          f"train it with model=cyclegan" if not module_cls.translates else
                          f"model={variant} translates between two image domains: use data=unpaired (folders A/B) "
                          f"or data=sneaker2boot")
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    if module_cls.translates and get_class(cfg.loss._target_).pairs:
        raise ConfigError(f"loss={option_name('loss', cfg.loss._target_)} pairs each fake with a real sample of the "
                          f"batch; model={variant}'s generator losses score translations on their own: use "
                          f"loss=lsgan (CycleGAN's) or loss=ns")
    g_classes, d_classes = module_cls.net_classes(cfg.model, data_classes)
    pack = int(cfg.model.get("pack", 1))
    if pack > 1 and d_classes:
        raise ConfigError(f"model.pack={pack} packs samples of different classes into one critic input, but this "
                          f"critic reads class labels: set model.pack=1")
    g_extra = {"num_classes": g_classes} if g_classes else {}
    g_extra.update(side_options(cfg.net.g, getattr(datamodule, "native", None)))
    shape = datamodule.shape
    generator = build(cfg.net.g, "net.g", shape=shape, **g_extra)
    d_shape = (shape[0] * pack, *shape[1:])  # PacGAN: m samples side by side along the first axis
    discriminator = build(cfg.net.d, "net.d", shape=d_shape, **({"num_classes": d_classes} if d_classes else {}))
    regularizers = {name: build(node, f"regularizer.{name}") for name, node in (cfg.get("regularizer") or {}).items()}
    check_critic(discriminator, regularizers)
    augment = build_augment(cfg, shape, module_cls, variant, choices.get("data") or type(datamodule).__name__,
                            choices.get("augment"))
    optim_g, optim_d = build(cfg.optim.g, "optim.g"), build(cfg.optim.d, "optim.d")
    check_optimizer(optim_g, "optim.g")
    check_optimizer(optim_d, "optim.d")
    extra = {"num_classes": data_classes} if module_cls.labels is not Labels.NONE else {}
    if augment is not None:  # augment/: every critic input, real and fake
        extra["augment"] = augment
    module = build(cfg.model, "model", generator=generator, discriminator=discriminator, loss=build(cfg.loss, "loss"),
                   regularizers=regularizers, optim_g=optim_g, optim_d=optim_d, iterations=cfg.iterations, **extra)
    module.fast = bool(cfg.trainer.get("fast", False))  # the fast executor (fast.py) runs its steps
    return module


def build_trainer(cfg: DictConfig, **kwargs) -> L.Trainer:
    """The Trainer of `cfg.trainer`: one device, or ganlab's DDP for alternating steps (strategy.py); atomic
    checkpoints. `trainer.fast` is ganlab's, not Lightning's: build_module gives it to the module.
    `trainer.max_time` is ganlab's too (callbacks/stop.py): Lightning's Timer would stop mid-iteration without a
    checkpoint. Under SLURM, Lightning's own SIGUSR1 handler (a checkpoint from inside the handler, mid-step, then
    a requeue) is off: callbacks/stop.py handles the signals."""
    node = cfg.trainer.copy()
    with open_dict(node):
        node.pop("fast", None)
        node.pop("max_time", None)
    if "default_root_dir" not in kwargs:
        kwargs["default_root_dir"] = cfg.out_dir
    if "callbacks" in kwargs and not kwargs.get("enable_progress_bar", node.get("enable_progress_bar", True)):
        # callbacks.progress (callbacks/progress.py): Lightning refuses a ProgressBar callback when the bar is off
        kwargs["callbacks"] = [c for c in kwargs["callbacks"] if not isinstance(c, ProgressBar)]
    plugins: list = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    # Lightning refuses Checkpoint callbacks when checkpointing is off, and adds its own when it is on
    checkpointing = any(isinstance(c, Checkpoint) for c in kwargs.get("callbacks", []))
    return build(node, "trainer", strategy=strategy_for(cfg.trainer), plugins=plugins,
                 enable_checkpointing=checkpointing, **kwargs)


def train(cfg: DictConfig) -> TrainResult:
    """One run of `cfg`: how it ended (completed, time limit or signal: callbacks/stop.py decides), at which
    iteration, and its final metrics (result.py). Bad input raises ConfigError before training; NaN/inf raises
    divergence.Diverged; a second Ctrl-C, KeyboardInterrupt (or Lightning's exit after it). No status is written:
    train.main's launch records the run (launch.py)."""
    check_config(cfg)
    resolve_precision(cfg)  # trainer.precision=auto -> bf16-mixed or 32-true for this machine (Lightning has no auto)
    strategy_for(cfg.trainer)  # refuses strategies other than auto / ddp before anything is built
    if cfg.trainer.get("fast"):
        check_fast(cfg, world_size(cfg.trainer))
    ckpt = cfg.get("ckpt_path")
    # a missing, damaged or foreign file fails here, before anything is built
    state = read_checkpoint(ckpt, "ckpt_path") if ckpt is not None else None
    start = resume.iteration_of(state) if state is not None else 0  # the iteration the run goes on after
    if start >= cfg.iterations:
        raise ConfigError(f"ckpt_path={ckpt} is at iteration {start}, and iterations={cfg.iterations}: nothing is "
                          f"left to train; raise iterations to train on from it")
    try:  # every run has it, whatever the callbacks group holds: the run would never end without it
        stop = Stop(_checkpoint_dir(cfg), cfg.trainer.get("max_time"))
    except ValueError as e:  # parse_max_time's message names trainer.max_time and the fix
        raise ConfigError(str(e)) from None
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.data, "data", seed=cfg.seed)
    module = build_module(cfg, datamodule)
    callbacks: list[L.Callback] = [stop]  # first at each iteration end: it decides the run's last
    for name, node in (cfg.get("callbacks") or {}).items():
        callbacks.append(build(node, f"callbacks.{name}"))
        if isinstance(callbacks[-1], Stop):
            raise ConfigError(f"callbacks.{name}: train() gives every run callbacks/stop.py itself (its time limit is "
                              f"trainer.max_time): remove callbacks.{name}")
    if cfg.get("metrics") and "_target_" in cfg.metrics:  # metrics=none leaves at most an experiment's settings
        # a failed evaluation fails the run when it computes the run's objective (metrics/callback.py)
        callbacks.append(build(cfg.metrics, "metrics", objective=cfg.get("optimized_metric")))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    callbacks.append(RunState(resolved))
    # a continued run's loggers keep what the run folder has up to its checkpoint (csv_logger.py, loggers.py)
    loggers = [build(node, f"logger.{name}", start=start) for name, node in (cfg.get("logger") or {}).items()]
    # the run's own checkpoint keeps the rows of metrics.csv up to it (callbacks/run_state.py), which rebuild a
    # file lost or damaged meanwhile; a run started from another run's checkpoint starts its own rows
    saved = state.get("metrics_csv") if state is not None and _own_checkpoint(cfg, ckpt) else None
    for logger in loggers:
        if isinstance(logger, CSVLog):
            logger.open(saved)
        logger.log_hyperparams(resolved)  # once: W&B's run config, TensorBoard's and CSV's hparams.yaml
    trainer = build_trainer(cfg, callbacks=callbacks, logger=loggers or False)
    with warnings.catch_warnings():
        # Batches are drawn as a function of the step, so resuming mid-"epoch" is exact (data/base.py).
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # the EMA copy, on purpose
        # Lightning 2.6's CombinedLoader builds torch's LeafSpec, which torch 2.14 deprecates: nothing a user can change
        warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\).*", FutureWarning)
        # weights_only: a checkpoint is tensors and plain values only (callbacks/run_state.py), never code
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    if stop.end is None:  # Lightning ended the fit for a reason of its own: a bug, not a run's ending
        raise RuntimeError(f"training ended at iteration {module.iteration} of {cfg.iterations} without an ending "
                           f"from callbacks/stop.py")
    return TrainResult(stop.end, stop.iteration, {k: float(v) for k, v in trainer.callback_metrics.items()},
                       stop.signum if stop.end is End.SIGNAL else None)


def _checkpoint_dir(cfg: DictConfig) -> str:
    """The run's checkpoint folder: callbacks.checkpoint's, or <out_dir>/checkpoints when the group has none (a
    signal's last.ckpt goes there all the same: callbacks/stop.py)."""
    return OmegaConf.select(cfg, "callbacks.checkpoint.dirpath") or str(Path(cfg.out_dir) / "checkpoints")


def _own_checkpoint(cfg: DictConfig, ckpt: str) -> bool:
    """Whether `ckpt` lies in this run's checkpoint folder (the run going on, not one started from another's)."""
    return Path(ckpt).resolve().parent == Path(_checkpoint_dir(cfg)).resolve()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train one run in its run folder and record how it ended in <run_dir>/status.json (run_folder.py); return
    the final value of `optimized_metric` for a sweeper (None when the run did not complete or names none).

    The launch first holds the folder (run_folder.claim: one launch at a time) and asks resume.plan what the
    folder holds; refused, it leaves every file there as it was. Then launch.Launch runs the training and is the
    one place that records how it ended and picks the exit: a single run that fails prints one `ganlab: ...` line
    and exits non-zero (an unexpected error: its traceback); in a multirun a failed job only records its status and
    error.txt and returns, so the sweep goes on; SweepReport sums the jobs up at the end and exits 1 if any failed.
    A signal stops the run with its checkpoint and the whole process (128 + the signal's number), in a multirun
    too: Ctrl-C means stop."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir, overrides = Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task)
    if rank_zero_only.rank != 0:  # another rank of a DDP launch: rank zero holds the folder and records the run
        return Launch(cfg, run_dir, multirun, folder=None).run(lambda: _train_planned(cfg, run_dir, overrides))
    if multirun and not any(arg.startswith("hydra.sweep.dir=") for arg in sys.argv[1:]):
        # Lightning starts a DDP job's other ranks by re-running this command line, `-m` too: they replay the sweep
        # in step with this process, and must find its folder, whose default name holds the time they start at
        sys.argv.append(f'hydra.sweep.dir="{_sweep_dir(hydra_cfg, run_dir)}"')
    # Hydra's record of the launch, as Hydra writes it; written once the folder is this launch's (run_folder.py)
    hydra_files = {"config.yaml": OmegaConf.to_yaml(cfg), "overrides.yaml": OmegaConf.to_yaml(overrides),
                   "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg}))}
    try:
        with run_folder.claim(run_dir, overrides) as folder:
            return _launch(cfg, folder, multirun, hydra_files)
    except (FolderInUse, WriteError) as e:  # in use, or no lock file can be made there: nothing was written
        return refused(e, run_dir, multirun)


def _launch(cfg: DictConfig, folder: run_folder.Claim, multirun: bool, hydra_files: dict[str, str]) -> float | None:
    """Rank zero's launch, holding the folder: plan, accept, train, record how it ended."""
    run_dir, overrides = folder.run_dir, folder.overrides
    try:  # the folder's run first: an error here is about that run, whose files stay as they are
        # its checkpoint holds the precision it resolved (precision.py): compare with this machine's
        resolve_precision(cfg)
        plan = resume.plan(cfg, run_dir, overrides)
        if plan.completed is not None:  # the same command again, or a relaunched sweep: nothing to train
            where = "status.json"
            if plan.continued:  # complete by its checkpoint: the status its last launch did not write
                folder.write_status("completed", None, plan.completed["metrics"])
                where = f"checkpoints/last.ckpt at iteration {plan.start} of {cfg.iterations}"
            print(f"ganlab: {run_dir} holds this run, completed ({where}): nothing to train", file=sys.stderr)
            return objective(cfg, plan.completed["metrics"])
    except ConfigError as e:
        return refused(e, run_dir, multirun)

    def task() -> TrainResult:
        previous = folder.accept(hydra_files, _writes_to(cfg, run_dir), plan.start)
        if previous is not None and previous["status"] == "running":
            was = previous.get("launch") or {}
            print(f"ganlab: the launch of {was.get('started', '?')} (pid {was.get('pid', '?')} on host "
                  f"{was.get('host', '?')}) was killed while it ran; its last checkpoint: "
                  + (f"{plan.ckpt} (iteration {plan.start})" if plan.continued else "none"), file=sys.stderr)
        check_objective(cfg, (HydraConfig.get().get("sweeper") or {}).get("direction"))
        if plan.continued:
            print(f"ganlab: continuing the run in {run_dir} from {plan.ckpt}", file=sys.stderr)
        with open_dict(cfg):
            cfg.ckpt_path = plan.ckpt
        return train(cfg)

    return Launch(cfg, run_dir, multirun, folder, continue_command(run_dir, overrides, multirun)).run(task)


def continue_command(run_dir: Path, overrides: list[str], multirun: bool) -> str:
    """The command that continues this run in its folder: "the same command" where the folder is named on the
    command line, else that command with the folder named (the default folder's name holds the launch's time)."""
    if not HydraConfig.initialized():
        return "the same command"
    hydra_cfg = HydraConfig.get()
    hydra = [o for o in hydra_cfg.overrides.hydra if not o.startswith("hydra.mode=")]
    if any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in hydra):  # as typed (main adds to argv)
        return "the same command"
    if multirun:
        return f"the same command with hydra.sweep.dir={shlex.quote(str(_sweep_dir(hydra_cfg, run_dir)))}"
    args = [*overrides, *hydra, f"hydra.run.dir={run_dir}"]
    return "`python train.py " + " ".join(shlex.quote(a) for a in args) + "`"


def _sweep_dir(hydra_cfg, run_dir: Path) -> Path:
    """A multirun job's sweep folder: its run folder less the job's subdir (hydra.sweep.subdir)."""
    return run_dir.parents[len(Path(str(hydra_cfg.sweep.subdir)).parts) - 1]


def _train_planned(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> TrainResult:
    """Another DDP rank's task: the same plan (read only) and training; rank zero records the run."""
    resolve_precision(cfg)
    plan = resume.plan(cfg, run_dir, overrides)
    if plan.completed is not None:  # nothing to train, as rank zero finds
        return TrainResult(End.COMPLETED, plan.start or cfg.iterations, plan.completed["metrics"])
    with open_dict(cfg):
        cfg.ckpt_path = plan.ckpt
    return train(cfg)


def _writes_to(cfg: DictConfig, run_dir: Path) -> list[Path]:
    """The folders a run writes files to: checked before training (run_folder.check_writable)."""
    folders = [run_dir, run_dir / "csv"]
    for key in ("callbacks.checkpoint.dirpath", "callbacks.samples.dirpath"):
        if (path := OmegaConf.select(cfg, key)) is not None:
            folders.append(Path(path))
    return folders
