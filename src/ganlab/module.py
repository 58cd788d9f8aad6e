"""GANModule: the one alternating loop.

One training batch = one critic step on one real batch; after every `n_critic`-th critic step comes one
generator step (WGAN's Algorithm 1 draws a fresh real batch for every critic iteration). An "iteration" is
n_critic critic steps plus one generator step; the run stops after `iterations` of them. The loop keeps its
own step counters (saved in checkpoints): Lightning's global_step counts every optimizer.step() of every
optimizer, n_critic + 1 per iteration, and nothing here depends on it.

Variants change a step by overriding one or two hooks (`latent`, `d_objective`, `g_objective`, or for a
different kind of model `critic_loss`/`generator_loss`); none copies the loop.

Every step's loss and gradients are checked before its optimizer steps (`_step`); what a bad step does is up to
the step policies (steps/), each with its own counters and checkpoint state:
- `on_nonfinite` (steps/nonfinite.py, see divergence.py): `stop` raises Diverged; `skip` leaves that net unchanged
  for the step (it still counts, so the run's length and schedules are those of the config) and raises after
  `max_skips` skipped steps of one net in a row.
- fp16 (trainer.precision=16-mixed, a GradScaler; steps/loss_scale.py): the penalties take their inner gradients
  on scaled outputs (regularizers.py), and a scale too large makes the *loss* inf, not only the gradients. So a
  non-finite loss is first taken for a loss-scale overflow: the step is dropped (it still counts, like a skipped
  one), the scale lowered as GradScaler lowers it on inf gradients, and `overflows` counted; only once the scale is
  under the policy's floor (1) is it a non-finite step as above, its message pointing to bf16-mixed. The scale
  each step used is logged as train/loss_scale.
- DDP (steps/rank_average.py, strategy.py): the net's gradients and the loss are averaged over the ranks before
  the check, so every rank reaches the same verdict.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import NamedTuple

import lightning as L
import torch
from hydra.utils import get_class
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from .augment import Augment
from .clock import RunClock
from .divergence import all_finite
from .ema import EMA
from .log import emit
from .losses import Loss
from .ranks import Ranks
from .regularizers import Regularizer
from .sampling import generate
from .steps.loss_scale import LossScaleBackoff
from .steps.nonfinite import NonFiniteSteps
from .steps.rank_average import average_over_ranks

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # a partial taking the parameters


class Latent(NamedTuple):
    """What G is called with: G(z, c)."""
    z: Tensor  # (B, z_dim)
    c: Tensor | None  # (B,) class labels or categorical code, None for an unconditional G


def penalties(cfg: Mapping) -> list[str]:
    """The configured regularizers that add a penalty to the critic's loss (critic_loss logs it as train/<name>)."""
    return [name for name, node in (cfg.get("regularizer") or {}).items()
            if get_class(node["_target_"]).penalty is not Regularizer.penalty
            or get_class(node["_target_"]).output_penalty is not Regularizer.output_penalty]


class GANModule(L.LightningModule):
    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: Loss,
                 optim_g: OptimizerFactory, optim_d: OptimizerFactory,
                 regularizers: Mapping[str, Regularizer] | None = None, n_critic: int = 1,
                 iterations: int = 10_000, ema_decay: float | None = None, lr_decay: str = "none",
                 on_nonfinite: str = "stop", max_skips: int = 100, feature_matching: bool = False, pack: int = 1,
                 augment: Augment | None = None):
        super().__init__()
        if lr_decay not in ("none", "linear"):
            raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
        if on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {on_nonfinite!r}")
        if max_skips < 1:
            raise ValueError(f"max_skips must be >= 1, got {max_skips}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if pack < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        self.automatic_optimization = False
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.regularizers = dict(regularizers or {})
        self.augment = augment  # augment/: applied to every critic input by perturb
        if augment is not None and augment.capture_blocker and self.capture_blocker is None:
            self.capture_blocker = augment.capture_blocker
        self.optim_g, self.optim_d, self.lr_decay = optim_g, optim_d, lr_decay
        self.n_critic, self.iterations = int(n_critic), int(iterations)
        self.on_nonfinite, self.max_skips = on_nonfinite, int(max_skips)
        self.feature_matching, self.pack = bool(feature_matching), int(pack)
        self.ema = EMA(generator, ema_decay) if ema_decay else None
        # A generator without trainable parameters (nets.identity) stays fixed: only the critic trains.
        self.trains_g = any(p.requires_grad for p in generator.parameters())
        self.d_steps = 0  # critic steps taken
        self.g_steps = 0  # generator steps taken
        self.nonfinite = NonFiniteSteps(on_nonfinite, max_skips)  # stop/skip a non-finite step, and its counters
        self.backoff = LossScaleBackoff()  # fp16: a non-finite loss as a loss-scale overflow, and their count
        self.clock = RunClock()  # training seconds over the run's launches, logged as time/seconds (log.py)
        self.final: str | None = None  # this iteration ends the run: completed | time_limit | signal (callbacks/stop.py)
        self._fast = None  # the FastStep (fast.py) running the steps, from the start of training, if trainer.fast
        self._logs: dict[str, list[Tensor]] = defaultdict(list)  # detached values since the last logged row

    # ---- counters ---------------------------------------------------------------------------------------
    @property
    def iteration(self) -> int:
        """Completed iterations (n_critic critic steps each, plus a generator step when G trains)."""
        return self.d_steps // self.n_critic

    @property
    def at_iteration_end(self) -> bool:
        return self.d_steps % self.n_critic == 0

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ganlab_steps"] = {"d_steps": self.d_steps, "g_steps": self.g_steps}
        checkpoint["ganlab_skips"] = {**self.nonfinite.state_dict(), **self.backoff.state_dict()}
        checkpoint["ganlab_regularizers"] = {name: reg.state_dict() for name, reg in self.regularizers.items()}
        checkpoint["ganlab_time"] = self.clock.state_dict()
        if self.augment is not None:
            checkpoint["ganlab_augment"] = self.augment.state_dict()  # ADA's p and its counts since the last change
        # the values since the last logged row (a stop at any iteration): a continued run's next row is the mean
        # of the same steps as an uninterrupted run's (trainer.fast keeps its sums on the device: not saved)
        checkpoint["ganlab_row"] = {k: torch.stack(v).detach().cpu() for k, v in self._logs.items() if v}  # (n,)
        if self._fast is not None and self._fast.capturable:
            from .fast import portable

            portable(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.d_steps = checkpoint["ganlab_steps"]["d_steps"]
        self.g_steps = checkpoint["ganlab_steps"]["g_steps"]
        skips = checkpoint.get("ganlab_skips", {})  # older checkpoints: none, or no "overflows"; counted from 0
        self.nonfinite.load_state_dict(skips)
        self.backoff.load_state_dict(skips)
        if "ganlab_time" in checkpoint:  # older checkpoints: the time restarts at 0
            self.clock.load_state_dict(checkpoint["ganlab_time"])
        for name, state in checkpoint.get("ganlab_regularizers", {}).items():
            if name in self.regularizers:
                self.regularizers[name].load_state_dict(state)
        if self.augment is not None:
            self.augment.load_state_dict(checkpoint.get("ganlab_augment", {}))
        self._logs.clear()
        for k, v in checkpoint.get("ganlab_row", {}).items():
            self._logs[k] = list(v.to(self.device).unbind())

    # the policies' counters, as the loop and its tests read them
    @property
    def skipped(self) -> int:
        """Steps skipped as non-finite (on_nonfinite=skip) so far in the run, both nets."""
        return self.nonfinite.skipped

    @property
    def skipped_in_a_row(self) -> dict[str, int]:
        """Per net ("critic", "generator"): its steps skipped in a row up to now (max_skips is about one net's)."""
        return self.nonfinite.in_a_row

    @property
    def overflows(self) -> int:
        """fp16 steps dropped so far as loss-scale overflows, both nets."""
        return self.backoff.overflows

    # ---- sampling ---------------------------------------------------------------------------------------
    @property
    def ranks(self) -> Ranks:
        """This process's place among the DDP ranks: training draws are blocks of global draws (ranks.py)."""
        t = self._trainer
        return Ranks(t.global_rank, t.world_size) if t is not None else Ranks()

    def sample_z(self, n: int) -> Tensor:
        """n latents (n, z_dim) for training: this rank's block of a global draw from the training's stream."""
        return self.ranks.randn(n, self.generator.z_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 1024) -> Tensor:
        """n samples (n, *shape) from the EMA generator if kept, else G, in eval mode, on the fixed latents of
        `seed`: sampling.generate, as sample.py and evaluate.py draw a checkpoint's generator (latents on the
        CPU, their own RNG, so sampling never disturbs the training's random stream)."""
        g = self.ema.calibrated() if self.ema is not None else self.generator
        was_training = g.training
        g.eval()
        try:
            return generate(g, n, seed, batch_size, self.device)
        finally:
            g.train(was_training)

    # ---- optimization -----------------------------------------------------------------------------------
    def configure_optimizers(self):
        opts = [self.optim_d(self.discriminator.parameters())]
        if self.trains_g:
            opts.insert(0, self.optim_g(self.generator.parameters()))
        if self.lr_decay == "none":
            return opts
        # linear: lr falls to 0 over the run, stepped once per iteration (WGAN-GP's CIFAR-10 schedule)
        return opts, [torch.optim.lr_scheduler.LambdaLR(o, lambda it: max(0.0, 1.0 - it / self.iterations))
                      for o in opts]

    def _optimizers(self):
        opts = self.optimizers()
        return (opts[0], opts[1]) if isinstance(opts, list) else (None, opts)

    def _step_schedulers(self) -> None:
        scheds = self.lr_schedulers()
        for s in scheds if isinstance(scheds, list) else [scheds] if scheds is not None else []:
            s.step()

    def perturb(self, x: Tensor) -> Tensor:
        """Every critic input passes the augmentation (augment/), then the regularizers' perturbations (instance
        noise)."""
        if self.augment is not None:
            x = self.augment(x, self.ranks)
        for reg in self.regularizers.values():
            x = reg.perturb(x, self.d_steps, self.ranks)
        return x

    # ---- the hooks variants override --------------------------------------------------------------------
    #: How the variant uses the data's class labels: None (ignores them), "all" (every real batch's labels,
    #: e.g. cGAN, AC-GAN; the module is built with num_classes=K) or "subset" (a labelled subset of the data,
    #: data.labelled, semi-supervised GAN). train.py refuses data that cannot give them, before training.
    labels: str | None = None
    #: True for image-to-image models (CycleGAN): batches are (A images, B images) and G draws nothing from
    #: noise, so sample.py / evaluate.py have nothing to sample from its checkpoint.
    translates = False

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
        logs = {"train/d_loss": loss.detach()}
        if self.loss.estimates_w1:
            logs["train/wasserstein"] = (real["logits"].mean() - fake["logits"].mean()).detach()
        return loss, logs

    def g_objective(self, fake: dict[str, Tensor], real: Tensor, y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's loss from the critic's outputs on its fakes; `real` (B, *shape) is the batch."""
        loss = self.g_adversarial(fake, real, latent)
        return loss, {"train/g_loss": loss.detach()}

    # ---- the names a run logs, known before anything is built (sweep.check_objective) --------------------
    # A variant that logs other names than these hooks declares them in its overrides of the three below, beside
    # the hooks that log them; tests/test_logged_names.py trains every variant and compares.
    @classmethod
    def d_logged(cls, cfg: Mapping) -> set[str]:
        """The names d_objective logs for the composed config `cfg`."""
        loss = cfg.get("loss")
        w1 = bool(loss) and get_class(loss["_target_"]).estimates_w1
        return {"train/d_loss", *(["train/wasserstein"] if w1 else [])}

    @classmethod
    def g_logged(cls, cfg: Mapping) -> set[str]:
        """The names g_objective logs."""
        return {"train/g_loss"}

    @classmethod
    def logged(cls, cfg: Mapping) -> set[str]:
        """Every train/* name (and a variant's own val/*) a run of `cfg` logs: the objectives', each penalty's
        (critic_loss), the skip count (on_nonfinite=skip, _log_iteration) and fp16's loss scale and overflows
        (_step). fp16 on a CPU runs as bf16 without a scale: these may be more names than a run logs, never fewer."""
        names = cls.d_logged(cfg) | cls.g_logged(cfg) | {f"train/{name}" for name in penalties(cfg)}
        if cfg["model"].get("on_nonfinite") == "skip":
            names.add("train/skipped")
        if str((cfg.get("trainer") or {}).get("precision")) in ("16-mixed", "16"):
            names |= {"train/loss_scale", "train/overflows"}
        augment = cfg.get("augment")
        if augment and "_target_" in augment:
            names |= get_class(augment["_target_"]).logged(augment)  # ADA's train/ada_p
        return names

    def g_adversarial(self, fake: dict[str, Tensor], real: Tensor, latent: Latent) -> Tensor:
        """The adversarial term of G's loss: the loss's g, or feature matching (model.feature_matching, Salimans
        et al. 2016): || E f(x) - E f(G(z)) ||^2 on the critic's last features f, real features held fixed."""
        if not self.feature_matching:
            if self.loss.pairs:  # relativistic: each fake against a real sample; no gradient through D(x) to G
                with torch.no_grad():
                    real_logits = self.critic(self.perturb(real), self.critic_labels(latent.c))["logits"]  # (B,)
                return self.loss.g(fake["logits"], real_logits)
            return self.loss.g(fake["logits"])
        with torch.no_grad():
            target = self.critic(self.perturb(real), self.critic_labels(latent.c))["features"].mean(0)  # (F,)
        return (fake["features"].mean(0) - target).pow(2).sum()

    # ---- the two losses of one iteration ----------------------------------------------------------------
    def critic_loss(self, real: Tensor, y: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        scaler = self.loss_scaler
        with torch.no_grad():
            latent = self.latent(real.shape[0], y)
            fake = self.generator(*latent)  # (B, *shape)
        yd = self.critic_labels(latent.c)
        real, fake = self.perturb(real), self.perturb(fake)
        real_out, fake_out = self.critic(real, yd), self.critic(fake, yd)
        loss, logs = self.d_objective(real_out, fake_out, y, latent)
        if self.augment is not None:  # ADA's heuristic reads D's logits on the (augmented) real batch
            self.augment.observe(real_out["logits"], real.shape[0], self.d_steps, self.ranks)
        for name, reg in self.regularizers.items():
            if reg.due(self.d_steps):
                pen = reg.penalty(lambda x: self.critic(x, yd), real, fake, self.d_steps, self.ranks, scaler)
                if pen is None:  # a penalty on the outputs D already gave (LeCam)
                    pen = reg.output_penalty(real_out["logits"], fake_out["logits"], self.d_steps)
                if pen is not None:
                    loss = loss + pen
                    logs[f"train/{name}"] = pen.detach()
        return loss, logs

    def generator_loss(self, real: Tensor, y: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        latent = self.latent(real.shape[0], y)
        fake = self.generator(*latent)  # (B, *shape)
        return self.g_objective(self.critic(self.perturb(fake), self.critic_labels(latent.c)), real, y, latent)

    @property
    def loss_scaler(self) -> torch.amp.GradScaler | None:
        """fp16's loss scaler (trainer.precision=16-mixed, Lightning's precision plugin), else None."""
        scaler = getattr(getattr(self._trainer, "precision_plugin", None), "scaler", None)
        return scaler if scaler is not None and scaler.is_enabled() else None

    def _step(self, opt, loss: Tensor, net: nn.Module, logs: dict[str, Tensor], which: str, iteration: int) -> bool:
        """Backward, then `opt.step()` if the loss and `net`'s gradients are finite, else the step is dropped (under
        fp16 first taken for an overflow of the loss scale, then stop or skip: see on_nonfinite); the step's values
        go to the log only if it was taken. Returns whether it was."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.ranks.world > 1:  # every rank then reaches the same verdict below
            loss = average_over_ranks([p for group in opt.param_groups for p in group["params"]], loss,
                                      self.ranks.world)
        scaler = self.loss_scaler
        # The loss and gradients, checked before the step (so a bad step can be dropped before it does harm):
        # one fused reduction and one host sync per optimizer step, as AMP's GradScaler costs too; free on a CPU,
        # on a GPU it drains the launch queue once per step. Not the weights: finite weights and gradients give
        # finite weights, short of an overflow in the update itself, which the next step's loss shows; the weights
        # are checked once per checkpoint instead (callbacks/checkpoint.py), so no checkpoint holds NaN/inf.
        # Under fp16 loss scaling inf gradients are routine: the scaler skips those steps itself, and only the loss
        # is checked here.
        grads = [] if scaler is not None else [p.grad for p in net.parameters() if p.grad is not None]
        finite = bool(all_finite([loss, *grads]))  # the sync
        if scaler is not None:  # the scale this backward used (read after the sync, so it waits for nothing more)
            self._logs["train/loss_scale"].append(self.backoff.used(scaler, loss.device))
        if finite:
            opt.step()
            self.nonfinite.taken(which)
            for k, v in logs.items():
                self._logs[k].append(v)
            return True
        opt.zero_grad(set_to_none=True)  # the step is dropped: this net is left as it was
        if scaler is None or not self.backoff.overflowed(scaler):  # not an overflow a lower scale avoids
            self.nonfinite.dropped(which, logs, iteration, self.d_steps, self.backoff.hint(scaler))
        return False

    def after_critic_step(self) -> None:
        """Called after each critic step that was taken (not after a skipped non-finite one); a variant with
        state that follows the critic (BEGAN's k_t) updates it here."""

    #: trainer.fast (fast.py), set by train.build_module; the FastStep is built when training starts
    fast = False
    #: Why this model's steps cannot be captured in CUDA graphs (trainer.fast then runs the eager step), or None
    capture_blocker: str | None = None

    def on_train_start(self) -> None:
        self.clock.start()
        self._fast = None
        if not self.fast:
            return
        from .fast import FastStep, capture_blocker

        blocker = capture_blocker(self)
        if blocker is not None:
            rank_zero_warn(f"trainer.fast: {blocker}; running the eager step")
            return
        self._fast = FastStep(self)
        if not self._fast.capture:
            rank_zero_info("trainer.fast: no CUDA device, so no CUDA graphs: the static step runs eagerly (one finite "
                           "check per logged row); its speed-up on a CPU comes from bf16 (on CPUs with bf16 units: "
                           "trainer.precision=auto, precision.py) and channels-last; make bench's dcgan32_fast row "
                           "measures it")

    def training_step(self, batch, batch_idx: int) -> None:
        real, y = batch  # (B, *shape), (B,) or None
        fast = self._fast
        opt_g, opt_d = self._optimizers()

        if fast is not None:
            fast.critic(real, y)
        else:
            loss, logs = self.critic_loss(real, y)
            if self._step(opt_d, loss, self.discriminator, logs, "critic", self.iteration + 1):
                for reg in self.regularizers.values():
                    reg.after_step(self.discriminator)
                self.after_critic_step()
        self.d_steps += 1

        if self.trains_g and self.at_iteration_end:
            if fast is not None:
                fast.generator()
            else:
                self.toggle_optimizer(opt_g)  # D's parameters stop requiring grad: no wasted D gradients
                g_loss, g_logs = self.generator_loss(real, y)
                stepped = self._step(opt_g, g_loss, self.generator, g_logs, "generator", self.iteration)
                self.untoggle_optimizer(opt_g)
                if stepped and self.ema is not None:
                    self.ema.update(self.generator)
            self.g_steps += 1

        if self.at_iteration_end:
            self._step_schedulers()
            self._log_iteration()

    def _log_iteration(self) -> None:
        """Every trainer.log_every_n_steps iterations: the mean of each value since the last row (one GPU sync)."""
        if self.iteration % self.trainer.log_every_n_steps and self.iteration < self.iterations:
            return
        if self._fast is not None:  # its values were summed on the device; checked here
            self._logs.update(self._fast.collect())
        means = torch.stack([torch.stack(v).float().mean() for v in self._logs.values()]) if self._logs else None
        if means is not None and self.ranks.world > 1:  # under DDP: means over the global batch, as one device sees it
            means = self.trainer.strategy.reduce(means, reduce_op="mean")
        means = means.tolist() if means is not None else []
        metrics = dict(zip(self._logs, means))  # a row of skipped steps only has no losses
        if self.on_nonfinite == "skip":
            metrics["train/skipped"] = float(self.skipped)  # steps skipped so far in the run, both nets
        if self.loss_scaler is not None:
            metrics["train/overflows"] = float(self.overflows)  # fp16 steps dropped so far to lower the scale
        if self.augment is not None:
            metrics.update(self.augment.logs())  # ADA's p now (train/ada_p)
        self._logs.clear()
        emit(self.trainer, self.iteration, metrics)
        self.log_dict({k.removeprefix("train/"): v for k, v in metrics.items()}, prog_bar=True, logger=False)
