"""The fast step (`trainer=fast`, i.e. `trainer.fast=true` with bf16-mixed and cuDNN autotuning).

GAN steps are launch-bound: a DCGAN WGAN-GP critic step at 64x64, batch 64, is a few hundred small kernels, and
the eager loop also stops once per optimizer step for the NaN/inf check (module.GANModule._step). The fast step
runs the same step code (module.critic_loss / generator_loss, the regularizers, EMA) with three changes:

- No host sync per step: the finite check of every step's loss and gradients is folded into one flag on the
  device, read once per logged row (trainer.log_every_n_steps), which is where the run stops with Diverged; the
  logged values are summed on the device. A step is not dropped when it is bad (that needs the host), so
  model.on_nonfinite=skip is refused. Checkpoints still refuse non-finite weights (callbacks/checkpoint.py).
- Channels-last layout for image nets and batches (tensor-core convolutions without transposes).
- On CUDA, each step is captured once in a CUDA graph and replayed: a critic graph per pattern of due lazy
  regularizers (R1 every 16: two), one generator graph; the optimizers become capturable (their step counters
  and learning rates live on the GPU, so lr schedules still apply); each graph is captured after a few eager
  warm-up steps of its own on a side stream (cuDNN autotuning, optimizer state, allocator), as PyTorch's CUDA
  graph docs ask. The real batch is copied into the graph's static input before each replay; random draws (z,
  GP's interpolation weights) come from the CUDA generator, which graphs advance on every replay.

What cannot be captured falls back to the eager step with one warning naming why (`capture_blocker`): models
whose step keeps state on the host (CycleGAN's image pools, SGAN's labelled batches: their `capture_blocker`),
annealed instance noise (its sigma changes on the host every step) and, on CUDA, optimizers without a capturable
mode. The other variants keep their state in tensors (BEGAN's k_t, InfoGAN's codes drawn on the device). A
capture that fails all the same warns once and the run goes on eagerly. What cannot run at all is refused before
training (`check_fast`): DDP (the gradient all-reduce is outside the graphs), fp16 loss scaling (GradScaler reads
its overflow flag on the host), on_nonfinite=skip.
Without CUDA the fast step runs the same static step eagerly (no graphs): tests/test_fast.py checks it computes
what the eager loop computes.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import DictConfig
from torch import Tensor, nn

from .config import ConfigError
from .divergence import Diverged, all_finite
from .regularizers import InstanceNoise

WARMUP = 3  # eager runs of each step before it is captured (PyTorch's docs: warm up on a side stream first)


def check_fast(cfg: DictConfig, world: int) -> None:
    """Refuse, before anything is built, what the fast step cannot run at all."""
    if world > 1:
        raise ConfigError(f"trainer.fast=true runs one device: its CUDA graphs do not hold DDP's gradient all-reduce "
                          f"({world} processes asked); set trainer.fast=false for trainer.devices > 1")
    if str(cfg.trainer.get("precision")) in ("16-mixed", "16"):
        raise ConfigError("trainer.fast=true with trainer.precision=16-mixed: the fp16 loss scaler reads its overflow "
                          "flag on the host every step; use trainer.precision=bf16-mixed (trainer=fast's default)")
    if cfg.model.get("on_nonfinite", "stop") == "skip":
        raise ConfigError("trainer.fast=true checks for NaN/inf once per logged row, so it cannot drop single bad "
                          "steps: set model.on_nonfinite=stop (the last good checkpoint is kept) or trainer.fast=false")


def capture_blocker(module) -> str | None:
    """Why this module's steps cannot be captured in CUDA graphs, or None when they can: a step must keep no state
    on the host that changes from step to step (a graph replays the values it was captured with)."""
    if module.capture_blocker:
        return f"{type(module).__name__} cannot be captured: {module.capture_blocker}"
    for name, reg in module.regularizers.items():
        if isinstance(reg, InstanceNoise) and reg.anneal_steps:
            return f"regularizer.{name} anneals its sigma on the host every step (anneal_steps=0 can be captured)"
        if reg.state_dict():
            return f"regularizer.{name} keeps state on the host that changes every step"
    if module.device.type == "cuda":
        for opt in filter(None, raw_optimizers(module)):
            if "capturable" not in opt.defaults:
                return f"{type(opt).__name__} has no capturable mode (Adam, AdamW and RMSprop have)"
    return None


def raw_optimizers(module) -> tuple[torch.optim.Optimizer | None, torch.optim.Optimizer]:
    """(G's, D's) torch optimizers under Lightning's wrappers (G's is None when G does not train): the fast step
    calls them directly, not through Lightning's per-step hooks."""
    return tuple(getattr(o, "optimizer", o) for o in module._optimizers())


def channels_last(module: nn.Module) -> None:
    """Image nets (any 4-d weight) to channels-last, in place (the optimizers keep the same Parameters)."""
    if any(p.dim() == 4 for p in module.parameters()):
        module.to(memory_format=torch.channels_last)


class FastStep:
    """Runs the module's critic and generator steps as described above. Built by the module at the start of
    training (after the optimizers exist and a checkpoint's state is loaded)."""

    def __init__(self, module):
        self.m = module
        self.opt_g, self.opt_d = raw_optimizers(module)
        self.device = module.device
        self.capture = self.device.type == "cuda"  # CUDA graphs; elsewhere the static step runs eagerly
        channels_last(module)
        self.capturable = self.capture  # the optimizers were made capturable (they stay so if a capture fails)
        if self.capturable:
            for opt in filter(None, (self.opt_g, self.opt_d)):
                _make_capturable(opt, self.device)
        # logged name -> sum of its values since the last row, on the device; a name's sum is created in an eager
        # run, since a kind of step is captured only after eager runs of its own (no allocation inside a graph)
        self.sums: defaultdict[str, Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        self.counts: dict[str, int] = {}  # logged name -> steps summed
        self.ok = torch.ones((), dtype=torch.bool, device=self.device)  # every step since the last row was finite
        self.graphs: dict[object, tuple[torch.cuda.CUDAGraph, tuple[str, ...]]] = {}
        self.runs: dict[object, int] = {}  # eager runs per step kind, before its capture
        self.real: Tensor | None = None  # static inputs of the graphs: (B, *shape) and (B,) or None
        self.y: Tensor | None = None
        self.first_row = module.iteration  # for the Diverged message: the steps since this iteration are checked

    # ---- the two steps, as plain functions of the static inputs ----------------------------------------------
    def _critic(self) -> tuple[str, ...]:
        m, opt = self.m, self.opt_d
        opt.zero_grad(set_to_none=False)
        loss, logs = m.critic_loss(self.real, self.y)
        loss.backward()
        self._check_and_sum(loss, m.discriminator, logs)
        opt.step()
        for reg in m.regularizers.values():
            reg.after_step(m.discriminator)
        m.after_critic_step()
        return tuple(logs)

    def _generator(self) -> tuple[str, ...]:
        m, opt = self.m, self.opt_g
        opt.zero_grad(set_to_none=False)
        m.toggle_optimizer(opt)  # D's parameters stop requiring grad, as in the eager step
        loss, logs = m.generator_loss(self.real, self.y)
        loss.backward()
        self._check_and_sum(loss, m.generator, logs)
        opt.step()
        m.untoggle_optimizer(opt)
        if m.ema is not None:
            m.ema.update(m.generator)
        return tuple(logs)

    def _check_and_sum(self, loss: Tensor, net: nn.Module, logs: dict[str, Tensor]) -> None:
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        self.ok.logical_and_(all_finite([loss, *grads]))
        for k, v in logs.items():
            self.sums[k].add_(v.detach().float())

    # ---- running them ----------------------------------------------------------------------------------------
    def critic(self, real: Tensor, y: Tensor | None) -> None:
        due = tuple(reg.due(self.m.d_steps) for reg in self.m.regularizers.values())
        self._run(("critic", due), self._critic, real, y)

    def generator(self) -> None:
        self._run("generator", self._generator, self.real, self.y)

    def _run(self, kind, fn: Callable[[], tuple[str, ...]], real: Tensor, y: Tensor | None) -> None:
        self._set_inputs(real, y)
        if kind in self.graphs:
            graph, keys = self.graphs[kind]
            graph.replay()
        else:
            keys = self._eager(fn)
            self.runs[kind] = self.runs.get(kind, 0) + 1
            if self.capture and self.runs[kind] >= WARMUP:
                self._capture(kind, fn)
        for k in keys:
            self.counts[k] = self.counts.get(k, 0) + 1

    def _set_inputs(self, real: Tensor, y: Tensor | None) -> None:
        """The batch in the static buffers (channels-last for images) once graphs need them, else as it is."""
        if real is self.real:  # the generator step reads the critic's last batch
            return
        if not self.capture:
            self.real, self.y = _layout(real), y
            return
        if self.real is None:
            self.real = torch.empty_like(_layout(real))
            self.y = None if y is None else torch.empty_like(y)
        self.real.copy_(real)
        if y is not None:
            self.y.copy_(y)

    def _eager(self, fn) -> tuple[str, ...]:
        """Run fn eagerly: on a side stream when it will be captured (PyTorch's CUDA graph docs)."""
        if not self.capture:
            return fn()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            keys = fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        return keys

    def _capture(self, kind, fn) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                keys = fn()
        except Exception as e:  # an op that cannot be captured: say which, keep training eagerly
            if kind == "generator":  # the capture stopped inside the step: D may still be toggled off
                self.m.untoggle_optimizer(self.opt_g)
            name = kind[0] if isinstance(kind, tuple) else kind
            rank_zero_warn(f"trainer.fast: the {name} step could not be captured in a CUDA graph "
                           f"({type(e).__name__}: {e}); every step runs eagerly from here on")
            self.capture = False
            self.graphs.clear()
            return
        self.graphs[kind] = (graph, keys)

    # ---- the logged row ----------------------------------------------------------------------------------------
    def collect(self) -> dict[str, list[Tensor]]:
        """At a logged row: raise Diverged if any step since the last row was non-finite (the one host sync), else
        the mean of each value since the last row, and start the next row."""
        if not bool(self.ok):
            first, last = self.first_row + 1, self.m.iteration
            where = f"iteration {first}" if first >= last else f"iterations {first}-{last}"
            raise Diverged(f"a step in {where} was non-finite (trainer.fast checks once per logged row, "
                           f"trainer.log_every_n_steps)", last, self.m.d_steps)
        means = {k: [self.sums[k] / n] for k, n in self.counts.items()}
        for s in self.sums.values():
            s.zero_()
        self.counts.clear()
        self.first_row = self.m.iteration
        return means


def _layout(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _make_capturable(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Step counters and learning rates on the device, so a graph replays the optimizer step as it is now (an lr
    schedule writes into the lr tensor in place: torch's LRScheduler fills tensor lrs)."""
    for group in opt.param_groups:
        group["capturable"] = True
        if not isinstance(group["lr"], Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
    for p, state in opt.state.items():  # a resumed run: counters saved by a non-capturable optimizer live on the host
        if "step" in state:
            state["step"] = state["step"].to(p.device, torch.float32)


def portable(checkpoint: dict) -> None:
    """A checkpoint of a fast run, resumable by any run: the optimizers' states as a non-capturable optimizer saves
    them (float learning rates; a capturable one resumes by `_make_capturable` again)."""
    for state in checkpoint.get("optimizer_states", []):
        for group in state["param_groups"]:
            if isinstance(group.get("lr"), Tensor):
                group["lr"] = float(group["lr"])
            if "capturable" in group:
                group["capturable"] = False

