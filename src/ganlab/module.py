"""GANModule: the one alternating loop.

One training batch = one critic step on one real batch; after every `n_critic`-th critic step comes one
generator step (WGAN's Algorithm 1 draws a fresh real batch for every critic iteration). An "iteration" is
n_critic critic steps plus one generator step; the run stops after `iterations` of them. The loop keeps its
own step counters (saved in checkpoints): Lightning's global_step counts every optimizer.step() of every
optimizer, n_critic + 1 per iteration, and nothing here depends on it.

Variants change a step by overriding `critic_loss` or `generator_loss`; none copies the loop.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

import lightning as L
import torch
from torch import Tensor, nn

from .ema import EMA
from .log import emit
from .losses import Loss
from .regularizers import Regularizer

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # a partial taking the parameters


class GANModule(L.LightningModule):
    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: Loss,
                 optim_g: OptimizerFactory, optim_d: OptimizerFactory,
                 regularizers: Mapping[str, Regularizer] | None = None, n_critic: int = 1,
                 iterations: int = 10_000, ema_decay: float | None = None, lr_decay: str = "none"):
        super().__init__()
        if lr_decay not in ("none", "linear"):
            raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.automatic_optimization = False
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.regularizers = dict(regularizers or {})
        self.optim_g, self.optim_d, self.lr_decay = optim_g, optim_d, lr_decay
        self.n_critic, self.iterations = int(n_critic), int(iterations)
        self.ema = EMA(generator, ema_decay) if ema_decay else None
        # A generator without trainable parameters (nets.identity) stays fixed: only the critic trains.
        self.trains_g = any(p.requires_grad for p in generator.parameters())
        self.d_steps = 0  # critic steps taken
        self.g_steps = 0  # generator steps taken
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

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.d_steps = checkpoint["ganlab_steps"]["d_steps"]
        self.g_steps = checkpoint["ganlab_steps"]["g_steps"]

    # ---- sampling ---------------------------------------------------------------------------------------
    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.generator.z_dim, device=self.device, generator=generator)  # (n, z_dim)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 1024) -> Tensor:
        """n samples (n, *shape) from the EMA generator if kept, else G, in eval mode, on a fixed latent batch
        (its own RNG, so sampling never disturbs the training's random stream)."""
        g = self.ema.model if self.ema is not None else self.generator
        was_training = g.training
        g.eval()
        rng = torch.Generator(device=self.device).manual_seed(seed)
        out = torch.cat([g(self.sample_z(min(batch_size, n - i), rng)) for i in range(0, n, batch_size)])
        g.train(was_training)
        return out

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
        """Every critic input passes the regularizers' perturbations (instance noise)."""
        for reg in self.regularizers.values():
            x = reg.perturb(x, self.d_steps)
        return x

    def critic_loss(self, real: Tensor, y: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            fake = self.generator(self.sample_z(real.shape[0]))  # (B, *shape)
        real, fake = self.perturb(real), self.perturb(fake)
        d_real = self.discriminator(real)["logits"]  # (B,)
        d_fake = self.discriminator(fake)["logits"]  # (B,)
        loss = self.loss.d(d_real, d_fake)
        logs = {"train/d_loss": loss.detach()}
        if self.loss.estimates_w1:
            logs["train/wasserstein"] = (d_real.mean() - d_fake.mean()).detach()
        for name, reg in self.regularizers.items():
            if reg.due(self.d_steps):
                pen = reg.penalty(self.discriminator, real, fake, self.d_steps)
                if pen is not None:
                    loss = loss + pen
                    logs[f"train/{name}"] = pen.detach()
        return loss, logs

    def generator_loss(self, real: Tensor, y: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        fake = self.generator(self.sample_z(real.shape[0]))  # (B, *shape)
        loss = self.loss.g(self.discriminator(self.perturb(fake))["logits"])
        return loss, {"train/g_loss": loss.detach()}

    def training_step(self, batch, batch_idx: int) -> None:
        real, y = batch  # (B, *shape), (B,) or None
        opt_g, opt_d = self._optimizers()

        loss, logs = self.critic_loss(real, y)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        for reg in self.regularizers.values():
            reg.after_step(self.discriminator)
        self.d_steps += 1

        if self.trains_g and self.at_iteration_end:
            self.toggle_optimizer(opt_g)  # D's parameters stop requiring grad: no wasted D gradients
            g_loss, g_logs = self.generator_loss(real, y)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            if self.ema is not None:
                self.ema.update(self.generator)
            self.g_steps += 1
            logs.update(g_logs)

        for k, v in logs.items():
            self._logs[k].append(v)
        if self.at_iteration_end:
            self._step_schedulers()
            self._log_iteration()
            if self.iteration >= self.iterations:
                self.trainer.should_stop = True

    def _log_iteration(self) -> None:
        """Every trainer.log_every_n_steps iterations: the mean of each value since the last row (one GPU sync)."""
        if self.iteration % self.trainer.log_every_n_steps and self.iteration < self.iterations:
            return
        means = torch.stack([torch.stack(v).float().mean() for v in self._logs.values()]).tolist()
        metrics = dict(zip(self._logs, means))
        self._logs.clear()
        emit(self.trainer, self.iteration, metrics)
        self.log_dict({k.removeprefix("train/"): v for k, v in metrics.items()}, prog_bar=True, logger=False)
