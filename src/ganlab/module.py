"""GANModule: the one alternating loop.

One training batch = one critic step on one real batch; after every `n_critic`-th critic step comes one
generator step (WGAN's Algorithm 1 draws a fresh real batch for every critic iteration). An "iteration" is
n_critic critic steps plus one generator step; the run stops after `iterations` of them (callbacks/stop.py
decides). The loop keeps its own step counters (saved in checkpoints): Lightning's global_step counts every
optimizer.step() of every optimizer, n_critic + 1 per iteration, and nothing here depends on it.

Each step is defined once (`critic_step`, `generator_step`) and run by an executor: steps/eager.py (checked on
the host, bad steps dropped) or fast.py (static inputs, one device-side finite flag, CUDA graphs). Variants change
a step by overriding one or two hooks (`latent`, `d_objective`, `g_objective`, or for a different kind of model
`critic_loss`/`generator_loss`) and declare what they are (`labels`, `LOGS`, `not_capturable`); none copies the
loop.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import ClassVar, NamedTuple

import lightning as L
import torch
from torch import Tensor, nn

from .augment import Augment
from .clock import RunClock
from .ema import EMA
from .fast import executor_for
from .labels import Labels
from .logged import Logged, around_the_step, declared, loss_estimates_w1
from .loop_state import load_loop_state, save_loop_state
from .losses import Loss
from .ranks import Ranks
from .regularizers import Adds, Regularizer, critic_penalties
from .sampling import generate
from .steps.fakes import Fakes
from .steps.loss_scale import LossScaleBackoff
from .steps.nonfinite import Net, NonFiniteSteps
from .steps.row import Row

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # a partial taking the parameters


class Latent(NamedTuple):
    """What G is called with: G(z, c)."""
    z: Tensor  # (B, z_dim)
    c: Tensor | None  # (B,) class labels or categorical code, None for an unconditional G


class LrDecay(Enum):
    """model.lr_decay."""
    NONE = "none"
    LINEAR = "linear"  # lr falls to 0 over the run, stepped once per iteration (WGAN-GP's CIFAR-10 schedule)


class GANModule(L.LightningModule):
    #: how the variant uses the data's class labels (labels.py)
    labels: ClassVar[Labels] = Labels.NONE
    #: image-to-image (CycleGAN): batches are (A images, B images), G draws nothing from noise (nothing to sample)
    translates: ClassVar[bool] = False
    #: its critic step gives the augmentation D's logits on the real batch (ADA's heuristic; augment/base.py)
    observes_real_logits: ClassVar[bool] = True
    #: why its steps cannot be captured in CUDA graphs (trainer.fast then runs the eager step), or None
    not_capturable: ClassVar[str | None] = None
    #: what its objectives log (logged.py): one declaration for `logs` and `logged`
    LOGS: ClassVar[Mapping[str, Logged]] = {"d_loss": Logged(Net.CRITIC),
                                            "wasserstein": Logged(Net.CRITIC, loss_estimates_w1),
                                            "g_loss": Logged(Net.GENERATOR)}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: Loss,
                 optim_g: OptimizerFactory, optim_d: OptimizerFactory,
                 regularizers: Mapping[str, Regularizer] | None = None, n_critic: int = 1,
                 iterations: int = 10_000, ema_decay: float | None = None, lr_decay: str = "none",
                 on_nonfinite: str = "stop", max_skips: int = 100, feature_matching: bool = False, pack: int = 1,
                 reuse_fakes: bool = False, augment: Augment | None = None):
        super().__init__()
        for name, value in (("n_critic", n_critic), ("iterations", iterations), ("pack", pack)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        try:
            self.lr_decay = LrDecay(lr_decay)
        except ValueError:
            raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}") from None
        self.automatic_optimization = False
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.regularizers = dict(regularizers or {})
        self.augment = augment  # augment/: applied to every critic input by perturb
        self.optim_g, self.optim_d = optim_g, optim_d
        self.n_critic, self.iterations = int(n_critic), int(iterations)
        self.feature_matching, self.pack = bool(feature_matching), int(pack)
        self.fakes = Fakes(reuse_fakes)  # fresh for each step, or the critic step's for G's (steps/fakes.py)
        self.ema = EMA(generator, ema_decay) if ema_decay else None
        # A generator without trainable parameters (nets.identity) stays fixed: only the critic trains.
        self.trains_g = any(p.requires_grad for p in generator.parameters())
        self.d_steps, self.g_steps = 0, 0  # critic steps taken, generator steps taken
        self.nonfinite = NonFiniteSteps(on_nonfinite, max_skips)  # stop/skip a non-finite step, and its counters
        self.backoff = LossScaleBackoff()  # fp16: a non-finite loss as a loss-scale overflow, and their count
        self.clock = RunClock()  # training seconds over the run's launches, logged as time/seconds (log.py)
        self.row = Row()  # the values logged since the last row (steps/row.py)
        self.final: str | None = None  # this iteration ends the run: its reason (callbacks/stop.py)
        self.fast = False  # trainer.fast, set by train.build_module: the fast executor (fast.py) runs the steps
        self.executor = None  # what runs the steps (steps/eager.py, fast.py), chosen when training starts
        self.ranks = Ranks()  # this process's place among the DDP ranks (ranks.py), set in setup
        self.loss_scaler: torch.amp.GradScaler | None = None  # fp16's (trainer.precision=16-mixed), set in setup

    def setup(self, stage: str) -> None:
        self.ranks = Ranks(self.trainer.global_rank, self.trainer.world_size)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # Lightning's precision plugin's
        self.loss_scaler = scaler if scaler is not None and scaler.is_enabled() else None

    # ---- counters and checkpoints -------------------------------------------------------------------------
    @property
    def iteration(self) -> int:
        """Completed iterations (n_critic critic steps each, plus a generator step when G trains)."""
        return self.d_steps // self.n_critic

    @property
    def at_iteration_end(self) -> bool:
        return self.d_steps % self.n_critic == 0

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        save_loop_state(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        load_loop_state(self, checkpoint)

    # ---- sampling ---------------------------------------------------------------------------------------
    def sample_z(self, n: int) -> Tensor:
        """n latents (n, z_dim) for training: this rank's block of a global draw from the training's stream."""
        return self.ranks.randn(n, self.generator.z_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 1024) -> Tensor:
        """n samples (n, *shape) of the EMA generator if kept, else G, in eval mode, on `seed`'s fixed latents:
        sampling.generate, as sample.py draws a checkpoint's (its own RNG: the training's stream is untouched)."""
        g = self.ema.calibrated() if self.ema is not None else self.generator
        was_training = g.training
        g.eval()
        try:
            return generate(g, n, seed, batch_size, self.device)
        finally:
            g.train(was_training)

    # ---- optimizers ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        opts = [self.optim_d(self.discriminator.parameters())]
        if self.trains_g:
            opts.insert(0, self.optim_g(self.generator.parameters()))
        if self.lr_decay is LrDecay.NONE:
            return opts
        return opts, [torch.optim.lr_scheduler.LambdaLR(o, lambda it: max(0.0, 1.0 - it / self.iterations))
                      for o in opts]

    def optimizer_pair(self) -> tuple:
        """(G's, D's) optimizers as Lightning wraps them; G's is None when G does not train."""
        opts = self.optimizers()
        return (opts[0], opts[1]) if isinstance(opts, list) else (None, opts)

    # ---- the hooks variants override --------------------------------------------------------------------
    @classmethod
    def net_classes(cls, model_cfg: Mapping, data_classes: int | None) -> tuple[int, int]:
        """(classes G is conditioned on, classes D reads), 0 for none; the nets are built with them."""
        return 0, 0

    def latent(self, n: int, y: Tensor | None) -> Latent:
        """G's inputs for n fakes: z (n, z_dim) and the labels c (n,) G is conditioned on: the real batch's labels
        for a conditional G (fakes then come in the real batch's classes), else None."""
        return Latent(self.sample_z(n), y if self.generator.num_classes else None)

    def critic_labels(self, c: Tensor | None) -> Tensor | None:
        """The labels a conditional critic reads with real and fake batches alike (they share classes)."""
        return c if self.discriminator.num_classes else None

    def perturb(self, x: Tensor) -> Tensor:
        """Every critic input passes the augmentation (augment/), then the regularizers' perturbations."""
        if self.augment is not None:
            x = self.augment(x, self.ranks)
        for reg in self.regularizers.values():
            if Adds.PERTURBATION in reg.adds:
                x = reg.perturb(x, self.d_steps, self.ranks)
        return x

    def critic(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        """D's outputs for x (B, *shape). With model.pack = m > 1 (PacGAN, Lin et al. 2018) each critic input is
        m samples side by side along channels (B, C, ...) -> (B/m, m*C, ...), so D judges m samples jointly."""
        if self.pack > 1:
            x = x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])
        return self.discriminator(x, y)

    def d_objective(self, real: dict[str, Tensor], fake: dict[str, Tensor], y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic's loss from its outputs on the real and fake batches (regularizers are added after)."""
        loss = self.loss.d(real["logits"], fake["logits"])
        if not self.loss.estimates_w1:
            return loss, self.logs(d_loss=loss)
        return loss, self.logs(d_loss=loss, wasserstein=real["logits"].mean() - fake["logits"].mean())

    def g_objective(self, fake: dict[str, Tensor], real: Tensor, y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's loss from the critic's outputs on its fakes; `real` (B, *shape) is the batch."""
        loss = self.g_adversarial(fake, real, latent)
        return loss, self.logs(g_loss=loss)

    def g_adversarial(self, fake: dict[str, Tensor], real: Tensor, latent: Latent) -> Tensor:
        """The adversarial term of G's loss: the loss's g, or feature matching (model.feature_matching, Salimans
        et al. 2016): || E f(x) - E f(G(z)) ||^2 on the critic's last features f, real features held fixed."""
        if self.feature_matching or self.loss.pairs:  # D's outputs on the real batch, no gradient through them
            with torch.no_grad():
                real_out = self.critic(self.perturb(real), self.critic_labels(latent.c))
        if self.feature_matching:  # features (B, F)
            return (fake["features"].mean(0) - real_out["features"].mean(0)).pow(2).sum()
        if self.loss.pairs:  # relativistic: each fake against a real sample, logits (B,)
            return self.loss.g(fake["logits"], real_out["logits"])
        return self.loss.g(fake["logits"])

    def after_critic_step(self) -> None:
        """After each critic step taken (not a skipped one): state that follows the critic (BEGAN's k_t)."""

    # ---- the names a run logs ---------------------------------------------------------------------------
    def logs(self, **values: Tensor) -> dict[str, Tensor]:
        """{train/<name>: value, detached} for names the class declares in LOGS (a variant's bug otherwise)."""
        undeclared = values.keys() - self.LOGS.keys()
        if undeclared:
            raise TypeError(f"{type(self).__name__} logs {sorted(undeclared)} without declaring them in its LOGS")
        return {f"train/{name}": v.detach() for name, v in values.items()}

    @classmethod
    def logged(cls, cfg: Mapping) -> set[str]:
        """Every train/* name (and a variant's own val/*) a run of `cfg` logs (logged.py)."""
        return declared(cls.LOGS, cfg) | around_the_step(cfg)

    # ---- the two losses of one iteration ----------------------------------------------------------------
    def critic_loss(self, real: Tensor, y: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        latent, fake = self.fakes.for_critic(self, real.shape[0], y)  # fake (B, *shape), no gradient to G
        yd = self.critic_labels(latent.c)
        real, fake = self.perturb(real), self.perturb(fake)
        real_out, fake_out = self.critic(real, yd), self.critic(fake, yd)
        loss, logs = self.d_objective(real_out, fake_out, y, latent)
        if self.augment is not None:  # ADA's heuristic reads D's logits on the (augmented) real batch
            self.augment.observe(real_out["logits"], real.shape[0], self.d_steps, self.ranks)
        penalties = critic_penalties(self.regularizers, self.d_steps, lambda x: self.critic(x, yd), real, fake,
                                     real_out["logits"], fake_out["logits"], self.ranks, self.loss_scaler)
        for name, pen in penalties.items():
            loss = loss + pen
            logs[f"train/{name}"] = pen.detach()
        return loss, logs

    def generator_loss(self, real: Tensor, y: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        latent, fake = self.fakes.for_generator(self, real.shape[0], y)  # fake (B, *shape)
        return self.g_objective(self.critic(self.perturb(fake), self.critic_labels(latent.c)), real, y, latent)

    # ---- the two steps, defined once; an executor runs them (steps/eager.py, fast.py) --------------------
    def critic_step(self, real: Tensor, y: Tensor | None, run) -> tuple[str, ...]:
        """One critic step on the batch (B, *shape), (B,) or None: the loss, backward, the executor's verdict, the
        optimizer step and the after-step hooks. Returns the names it logged."""
        opt = run.opt_d
        loss, logs = self.critic_loss(real, y)
        run.zero_grad(opt)
        run.backward(loss)
        if run.accepts(opt, loss, self.discriminator, logs, Net.CRITIC, self.iteration + 1):
            opt.step()
            for reg in self.regularizers.values():
                if Adds.AFTER_STEP in reg.adds:
                    reg.after_step(self.discriminator)
            self.after_critic_step()
        return tuple(logs)

    def generator_step(self, real: Tensor, y: Tensor | None, run) -> tuple[str, ...]:
        """One generator step (D's parameters frozen meanwhile: no wasted D gradients), then the EMA update."""
        opt = run.opt_g
        self.toggle_optimizer(opt)
        loss, logs = self.generator_loss(real, y)
        run.zero_grad(opt)
        run.backward(loss)
        taken = run.accepts(opt, loss, self.generator, logs, Net.GENERATOR, self.iteration)
        if taken:
            opt.step()
        self.untoggle_optimizer(opt)
        if taken and self.ema is not None:
            self.ema.update(self.generator)
        return tuple(logs)

    def on_train_start(self) -> None:
        self.clock.start()
        self.executor = executor_for(self)

    def training_step(self, batch, batch_idx: int) -> None:
        real, y = batch  # (B, *shape), (B,) or None
        self.executor.critic(real, y)
        self.d_steps += 1
        if self.trains_g and self.at_iteration_end:
            self.executor.generator(real, y)
            self.g_steps += 1
        if self.at_iteration_end:
            schedulers = self.lr_schedulers()  # one per optimizer (lr_decay=linear), else None
            for scheduler in schedulers if isinstance(schedulers, list) else filter(None, [schedulers]):
                scheduler.step()
            if self.iteration % self.trainer.log_every_n_steps == 0 or self.iteration >= self.iterations:
                self.row.log(self)  # one row of the means since the last (steps/row.py)
