"""The fast executor (`trainer=fast`, i.e. `trainer.fast=true` with bf16-mixed and cuDNN autotuning).

GAN steps are launch-bound: a DCGAN WGAN-GP critic step at 64x64, batch 64, is a few hundred small kernels, and
the eager executor (steps/eager.py) also stops once per optimizer step for the NaN/inf check. This executor runs
the module's same two steps (GANModule.critic_step / generator_step) with three changes, all in how it runs them:

- No host sync per step: its `accepts` folds the finite check of every step's loss and gradients into one flag
  on the device, read once per logged row (trainer.log_every_n_steps), which is where the run stops with
  Diverged; the logged values are summed on the device. A step is not dropped when it is bad (that needs the
  host), so model.on_nonfinite=skip is refused. Checkpoints still refuse non-finite weights
  (callbacks/checkpoint.py). It uses the torch optimizers under Lightning's wrappers and plain backward (a graph
  replays kernels, not Lightning's per-step hooks).
- Channels-last layout for image nets and batches (tensor-core convolutions without transposes).
- On CUDA, each step is captured once in a CUDA graph and replayed: a critic graph per pattern of due lazy
  regularizers (R1 every 16: two), one generator graph; the optimizers become capturable (their step counters
  and learning rates live on the GPU, so lr schedules still apply); each graph is captured after a few eager
  warm-up steps of its own on a side stream (cuDNN autotuning, optimizer state, allocator), as PyTorch's CUDA
  graph docs ask. The real batch is copied into the graph's static input before each replay; random draws (z,
  GP's interpolation weights) come from the CUDA generator, which graphs advance on every replay.

What cannot be captured runs on the eager executor with one warning naming why (`why_not_captured`): the parts
that declare `not_capturable` (a step keeping state on the host: CycleGAN's image pools, SGAN's labelled batches,
ADA's p, LeCam's averages, annealed instance noise) and, on CUDA, optimizers without a capturable mode and
model.reuse_fakes (G's graph kept from one step to the next). The other
variants keep their state in tensors (BEGAN's k_t, InfoGAN's codes drawn on the device). A capture that fails all
the same warns once and the run goes on eagerly. What cannot run at all is refused before training
(`check_fast`): DDP (the gradient all-reduce is outside the graphs), fp16 loss scaling (GradScaler reads its
overflow flag on the host), on_nonfinite=skip.
Without CUDA the fast executor runs the same static step eagerly (no graphs): tests/test_fast.py checks it
computes what the eager executor computes.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import DictConfig
from torch import Tensor, nn

from .config import ConfigError
from .divergence import Diverged, all_finite
from .steps.eager import EagerSteps
from .steps.nonfinite import Net, OnNonfinite

WARMUP = 3  # eager runs of each step before it is captured (PyTorch's docs: warm up on a side stream first)


def check_fast(cfg: DictConfig, world: int) -> None:
    """Refuse, before anything is built, what the fast step cannot run at all."""
    if world > 1:
        raise ConfigError(f"trainer.fast=true runs one device: its CUDA graphs do not hold DDP's gradient all-reduce "
                          f"({world} processes asked); set trainer.fast=false for trainer.devices > 1")
    if str(cfg.trainer.get("precision")) in ("16-mixed", "16"):
        raise ConfigError("trainer.fast=true with trainer.precision=16-mixed: the fp16 loss scaler reads its overflow "
                          "flag on the host every step; use trainer.precision=bf16-mixed (trainer=fast's default)")
    if cfg.model.get("on_nonfinite") == OnNonfinite.SKIP.value:
        raise ConfigError("trainer.fast=true checks for NaN/inf once per logged row, so it cannot drop single bad "
                          "steps: set model.on_nonfinite=stop (the last good checkpoint is kept) or trainer.fast=false")


def executor_for(module) -> EagerSteps | FastSteps:
    """What runs the module's steps from the start of training (once its optimizers exist and a checkpoint's state
    is loaded): the fast executor for trainer.fast when the steps can be captured, else the eager one."""
    if not module.fast:
        return EagerSteps(module)
    why = why_not_captured(module)
    if why is not None:
        rank_zero_warn(f"trainer.fast: {why}; running the eager step")
        return EagerSteps(module)
    if module.device.type != "cuda":
        rank_zero_info("trainer.fast: no CUDA device, so no CUDA graphs: the static step runs eagerly (one finite "
                       "check per logged row); its speed-up on a CPU comes from bf16 (on CPUs with bf16 units: "
                       "trainer.precision=auto, precision.py) and channels-last; make bench's dcgan32_fast row "
                       "measures it")
    return FastSteps(module)


def why_not_captured(module) -> str | None:
    """Why this module's steps cannot be captured in CUDA graphs, or None when they can: a step must keep no state
    on the host that changes from step to step (a graph replays the values it was captured with). Each part
    declares it (`not_capturable`)."""
    if module.not_capturable:
        return f"{type(module).__name__} cannot be captured: {module.not_capturable}"
    for name, reg in module.regularizers.items():
        if reg.not_capturable:
            return f"regularizer.{name} {reg.not_capturable}"
    if module.augment is not None and module.augment.not_capturable:
        return f"{type(module).__name__} cannot be captured: {module.augment.not_capturable}"
    if module.device.type == "cuda":
        if module.fakes.reuse:  # the generator graph would replay a backward through the critic graph's activations
            return "model.reuse_fakes carries G's graph from the critic step into the generator step"
        for opt in filter(None, torch_optimizers(module)):
            if "capturable" not in opt.defaults:
                return f"{type(opt).__name__} has no capturable mode (Adam, AdamW and RMSprop have)"
    return None


def torch_optimizers(module) -> tuple[torch.optim.Optimizer | None, torch.optim.Optimizer]:
    """(G's, D's) torch optimizers under Lightning's wrappers (G's is None when G does not train)."""
    return tuple(getattr(o, "optimizer", o) for o in module.optimizer_pair())


def channels_last(module: nn.Module) -> None:
    """Image nets (any 4-d weight) to channels-last, in place (the optimizers keep the same Parameters)."""
    if any(p.dim() == 4 for p in module.parameters()):
        module.to(memory_format=torch.channels_last)


class FastSteps:
    """Runs the module's critic and generator steps as described above."""

    def __init__(self, module):
        self.m = module
        self.opt_g, self.opt_d = torch_optimizers(module)
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
        self.source: Tensor | None = None  # the batch last copied into the static inputs
        self.real: Tensor | None = None  # static inputs of the graphs: (B, *shape) and (B,) or None
        self.y: Tensor | None = None
        self.first_row = module.iteration  # for the Diverged message: the steps since this iteration are checked

    # ---- the verbs a step uses (GANModule.critic_step / generator_step) --------------------------------------
    def zero_grad(self, opt) -> None:
        opt.zero_grad(set_to_none=False)  # gradients stay allocated: a graph writes into the same tensors

    def backward(self, loss: Tensor) -> None:
        loss.backward()

    def accepts(self, opt, loss: Tensor, net: nn.Module, logs: dict[str, Tensor], which: Net, iteration: int) -> bool:
        """Always: the finite check goes into the device-side flag, read at the next row (`collect`)."""
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        self.ok.logical_and_(all_finite([loss, *grads]))
        for k, v in logs.items():
            self.sums[k].add_(v.detach().float())
        return True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.capturable:
            portable(checkpoint)

    # ---- running them ----------------------------------------------------------------------------------------
    def critic(self, real: Tensor, y: Tensor | None) -> None:
        due = tuple(reg.due(self.m.d_steps) for reg in self.m.regularizers.values())
        self._run((Net.CRITIC, due), lambda: self.m.critic_step(self.real, self.y, self), real, y)

    def generator(self, real: Tensor, y: Tensor | None) -> None:
        self._run(Net.GENERATOR, lambda: self.m.generator_step(self.real, self.y, self), real, y)

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
        if real is self.source:  # the generator step reads the critic's last batch
            return
        self.source = real
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
            if kind is Net.GENERATOR:  # the capture stopped inside the step: D may still be toggled off
                self.m.untoggle_optimizer(self.opt_g)
            net = kind[0] if isinstance(kind, tuple) else kind
            rank_zero_warn(f"trainer.fast: the {net.value} step could not be captured in a CUDA graph "
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

