"""Training-step cases: ganlab's step (the module train.build_module builds, trained by a real lightning.Trainer.fit
with train.py's settings) beside a plain PyTorch loop written here with the same nets, loss, n_critic, optimizers,
batch and data, on the same device, in one process.

ganlab side: the config composed as `python train.py` composes it (the case's overrides, `metrics=none`, progress
bar off), the module from train.build_module, the Trainer from the config's `trainer` node with train.py's strategy
and checkpoint plugin, but no loggers and none of the checkpoint / sample / interrupt callbacks: only a clock (a
callback reading perf_counter, after draining the GPU queue, at the start of iteration `warmup` and at the end of
iteration `warmup + iters`).

Plain side: the nets, the loss and the optimizers built from the same config nodes after the same seeding (so the
weights start identical), the batches drawn by the same data module's `batch(k)` (a pure function of the seed and
k, already on the device), and the loop written out: zero_grad / backward / step, D's parameters frozen during the
generator step as ganlab does (so both do the same FLOPs), the gradient penalty written inline. Both runs see the
same data and random draws in the same order, so their weights after the same iterations agree (the test checks
the losses). With the recipe's R1 (lazy, every k-th critic step), EMA generator and model.reuse_fakes (G's step
scores the last critic step's fakes) the plain loop does them too.

Each repeat runs both sides, alternating which goes first (ABBA), after an untimed warm-up pair; the row gives
medians and the ratio's spread over the repeats.
"""
from __future__ import annotations

import copy
import ctypes
import gc
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ..callbacks.stop import Stop
from ..config import build, check_config
from ..nets import side_options
from ..precision import resolve_precision
from ..train import CONF_DIR, build_module, build_trainer
from .common import PeakMemory, count_flops, cpu_peak, fmt_mib, gpu_peak, median_spread, sync


@dataclass(frozen=True)
class StepCase:
    name: str
    label: str
    overrides: tuple[str, ...]
    device: str  # cpu | cuda
    warmup: int  # untimed iterations at the start of every run
    seconds: float  # timed iterations per run: as many as the plain loop runs in about this long (5 to 2,000)
    repeats: int  # ganlab / plain pairs


# ganlab's modes on the GPU: the eager step as configured (fp32), bf16 autocast, and the fast step (trainer=fast:
# bf16, channels-last, CUDA graphs, one sync per logged row, fast.py). The plain loop is always eager fp32.
GPU_MODES = {"eager": (), "bf16": ("trainer.precision=bf16-mixed",), "fast": ("trainer=fast",)}

RECIPE = ("model=lsgan_fast",)  # make train's recipe: the model conf/experiment/fmnist_fast.yaml chooses

STEP_CASES: dict[str, list[StepCase]] = {
    "toy": [StepCase("toy", "toy: MLP 3x512 on grid25, NS loss, Adam, n_critic 1, batch 256, cpu",
                     ("data=grid25",), "cpu", warmup=5, seconds=3.0, repeats=5),
            StepCase("toy_fast", "toy_fast: the toy case with trainer.fast=true (on a CPU: the static step without "
                     "CUDA graphs, one finite check per logged row)", ("data=grid25", "trainer.fast=true"), "cpu",
                     warmup=5, seconds=3.0, repeats=5)],
    "dcgan32": [StepCase("dcgan32", "dcgan32: DCGAN ch 64, Fashion-MNIST 32x32, NS loss, Adam, batch 64, cpu",
                         (), "cpu", warmup=2, seconds=6.0, repeats=5),
                StepCase("dcgan32_fast", "dcgan32_fast: the dcgan32 case with trainer=fast (on a CPU: channels-last, "
                         "and bf16 autocast where the CPU has AMX / AVX-512 bf16 units, trainer.precision=auto; "
                         "no CUDA graphs) against the same plain fp32 loop", ("trainer=fast",), "cpu", warmup=2,
                         seconds=6.0, repeats=5)],
    "recipe": [StepCase("recipe", "recipe: make train's model=lsgan_fast (DCGAN G ch 64 with a full-resolution "
                        "tail of 16, LayerNorm critic ch 32, least squares, R1 gamma 0.3 every 16 critic steps, an EMA "
                        "generator, Adam 4e-4 / 8e-4, one G pass per iteration), Fashion-MNIST 32x32, batch 64, cpu, "
                        "fp32", RECIPE, "cpu", warmup=2, seconds=6.0, repeats=5),
               StepCase("recipe_fast", "recipe_fast: the recipe case with trainer=fast, as make train runs it (on a "
                        "CPU: channels-last, and bf16 autocast where the CPU has bf16 units) against the same plain "
                        "fp32 loop", (*RECIPE, "trainer=fast"), "cpu", warmup=2, seconds=6.0, repeats=5)],
    "wgan_gp64": [StepCase(f"wgan_gp64_b{b}_{mode}", f"wgan_gp64: DCGAN 64x64 WGAN-GP, n_critic 5, batch {b}, cuda, "
                           f"ganlab {mode}", ("model=wgan_gp", "data.size=64", f"data.batch_size={b}", *extra),
                           "cuda", warmup=10, seconds=3.0, repeats=5)
                  for b in (64, 256) for mode, extra in GPU_MODES.items()],
}


@dataclass
class Run:
    seconds: float  # the timed iterations
    peak_mem: int | None
    losses: tuple[float, float]  # (d, g) of the final nets on a fixed probe batch
    nets: tuple[torch.nn.Module, ...] = field(repr=False, default=None)  # G, D, G's EMA copy (None without one)


def compose_cfg(case: StepCase, out_dir: str, seed: int, root: str | None, extra: tuple[str, ...] = ()) -> DictConfig:
    overrides = [f"out_dir={out_dir}", "metrics=none", "trainer.enable_progress_bar=false", f"seed={seed}",
                 f"trainer.accelerator={'gpu' if case.device == 'cuda' else 'cpu'}", *case.overrides, *extra]
    if root and not any(o.startswith("data=") for o in case.overrides):
        overrides.append(f"data.root={root}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    check_config(cfg)
    resolve_precision(cfg)
    return cfg


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS, so a run's peak RSS growth shows its own allocations."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@torch.no_grad()
def probe_losses(g, d, loss, dm, device) -> tuple[float, float]:
    """(critic loss, generator loss) of the nets on a fixed real batch and fixed latents."""
    real = dm.real(dm.batch_size, device)
    z = torch.randn(dm.batch_size, g.z_dim, device=device, generator=torch.Generator(device).manual_seed(123))
    fake = d(g(z))["logits"]
    return float(loss.d(d(real)["logits"], fake)), float(loss.g(fake))


class _Clock(L.Callback):
    """perf_counter at the start of batch `start` and at the end of batch `end - 1` (GPU queue drained)."""

    def __init__(self, start: int, end: int, device: torch.device):
        self.start, self.end, self.device = start, end, device
        self.t0 = self.t1 = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.start:
            sync(self.device)
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.end - 1:
            sync(self.device)
            self.t1 = time.perf_counter()


def run_ganlab(cfg: DictConfig, dm, device: torch.device, warmup: int, iters: int) -> Run:
    """`warmup + iters` iterations of train.py's training: the module from build_module, Trainer.fit."""
    cfg.iterations = warmup + iters
    mem = PeakMemory(device)
    _release_freed_memory()
    mem.start()
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # as train.train(): then the data, then the module
    dm.consumed = 0  # the data module is shared by every run of the case: start each at batch 0
    module = build_module(cfg, dm)
    nc = module.n_critic
    clock = _Clock(warmup * nc, (warmup + iters) * nc, device)
    # Stop ends the fit at `iterations`, as in train(); without a checkpoint folder it leaves Ctrl-C to Python
    trainer = build_trainer(cfg, callbacks=[Stop(None), clock], logger=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on the endless loader, the log interval, ...
        trainer.fit(module, datamodule=dm)
    if module.iteration != warmup + iters or clock.t1 is None:
        raise RuntimeError(f"ganlab ran {module.iteration} iterations, expected {warmup + iters}")
    peak = mem.peak()
    losses = probe_losses(module.generator, module.discriminator, module.loss, dm, device)
    ema = module.ema.model if module.ema is not None else None
    return Run(clock.t1 - clock.t0, peak, losses, (module.generator, module.discriminator, ema))


class PlainLoop:
    """The same training written plainly. Built from the config nodes build_module uses, in its order, after the
    same seeding, so the nets start with the same weights."""

    def __init__(self, cfg: DictConfig, dm, device: torch.device):
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        self.dm, self.device = dm, device
        side = side_options(cfg.net.g, getattr(dm, "native", None))  # net.g.native (dcgan_fast) as build_module
        self.G = build(cfg.net.g, "net.g", shape=dm.shape, **side).to(device)
        self.D = build(cfg.net.d, "net.d", shape=dm.shape).to(device)
        self.loss = build(cfg.loss, "loss")
        regs = dict(cfg.get("regularizer") or {})
        gp, r1 = regs.pop("gp", None), regs.pop("r1", None)
        if regs or (gp and (gp.get("one_sided") or gp.get("every", 1) != 1)):
            raise ValueError(f"the plain loop implements only the two-sided gradient penalty and R1, got "
                             f"{dict(cfg.regularizer)}")
        self.gp = float(gp.weight) if gp else 0.0
        self.r1, self.r1_every = (float(r1.weight), int(r1.get("every", 1))) if r1 else (0.0, 1)
        self.opt_d = build(cfg.optim.d, "optim.d")(self.D.parameters())
        self.opt_g = build(cfg.optim.g, "optim.g")(self.G.parameters())
        self.n_critic, self.B = int(cfg.model.n_critic), dm.batch_size
        self.reuse = bool(cfg.model.get("reuse_fakes"))  # G's step scores the last critic step's fakes
        # the EMA generator (model.ema_decay): a frozen copy, lerped toward G after each of G's steps with
        # TensorFlow's warm-up decay min(decay, (1 + t) / (10 + t))
        decay = cfg.model.get("ema_decay")
        self.ema = copy.deepcopy(self.G).requires_grad_(False) if decay else None
        self.ema_decay, self.ema_updates = float(decay or 0.0), 0
        self.data_rng = torch.Generator(device=device)
        self.k = 0  # batches drawn

    def iteration(self) -> None:
        G, D, loss, B = self.G, self.D, self.loss, self.B
        for i in range(self.n_critic):
            real, _ = self.dm.batch(self.k, self.data_rng, 0, 1)  # (B, *shape), on the device
            self.k += 1
            with torch.set_grad_enabled(self.reuse and i == self.n_critic - 1):
                kept = G(torch.randn(B, G.z_dim, device=self.device))
            fake = kept.detach()
            d_loss = loss.d(D(real)["logits"], D(fake)["logits"])
            if self.gp:
                eps = torch.rand(B, *[1] * (real.dim() - 1), device=self.device, dtype=real.dtype)
                x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x_hat)["logits"].sum(), x_hat, create_graph=True)
                d_loss = d_loss + self.gp * (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
            if self.r1 and (self.k - 1) % self.r1_every == 0:  # lazy R1 at every r1_every-th critic step (k - 1: this
                # step's index, one batch per critic step), weighted x r1_every, as ganlab's regularizers.R1
                x = real.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x)["logits"].sum(), x, create_graph=True)
                d_loss = d_loss + 0.5 * self.r1 * self.r1_every * grad.flatten(1).norm(2, dim=1).pow(2).mean()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        D.requires_grad_(False)  # no gradients for D's weights in G's step
        fake = kept if self.reuse else G(torch.randn(B, G.z_dim, device=self.device))
        g_loss = loss.g(D(fake)["logits"])
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        D.requires_grad_(True)
        if self.ema is not None:
            keep = min(self.ema_decay, (1 + self.ema_updates) / (10 + self.ema_updates))
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.parameters()), list(G.parameters()), 1 - keep)
            self.ema_updates += 1


def run_plain(cfg: DictConfig, dm, device: torch.device, warmup: int, iters: int) -> tuple[Run, PlainLoop]:
    mem = PeakMemory(device)
    _release_freed_memory()
    mem.start()
    loop = PlainLoop(cfg, dm, device)
    for _ in range(warmup):
        loop.iteration()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        loop.iteration()
    sync(device)
    seconds = time.perf_counter() - t0
    peak = mem.peak()
    return Run(seconds, peak, probe_losses(loop.G, loop.D, loop.loss, dm, device), (loop.G, loop.D, loop.ema)), loop


@dataclass
class StepResult:
    case: str
    label: str
    iters: int
    repeats: int
    ganlab_it_s: float  # medians over the repeats
    plain_it_s: float
    ratio: tuple[float, float, float]  # ganlab / plain generator iterations/s: median, min, max over the pairs
    ganlab_img_s: float  # real samples consumed per second (n_critic x batch per iteration)
    plain_img_s: float
    flops_per_iter: int
    peak_flops: float | None
    peak_what: str
    ganlab_mfu: float | None
    plain_mfu: float | None
    ganlab_mem: int | None
    plain_mem: int | None
    mem_what: str
    ganlab_losses: tuple[float, float]  # (d, g) on the probe batch after warmup + iters iterations, last repeat
    plain_losses: tuple[float, float]

    def row(self) -> str:
        def pair(a, b, f):
            return f"{f(a)} / {f(b)}"

        mfu = (lambda v: "n/a" if v is None else f"{100 * v:.2f} %")
        mem_ratio = (f"{self.ganlab_mem / self.plain_mem:.2f}x" if self.ganlab_mem and self.plain_mem else "n/a")
        r, lo, hi = self.ratio
        img_s = pair(self.ganlab_img_s, self.plain_img_s, lambda v: f"{v:,.0f}")
        return (f"| {self.case} | {pair(self.ganlab_it_s, self.plain_it_s, lambda v: f'{v:,.1f}')} | "
                f"**{r:.2f}x** [{lo:.2f}-{hi:.2f}] | {img_s} | "
                f"{self.flops_per_iter / 1e9:.3f} | {pair(self.ganlab_mfu, self.plain_mfu, mfu)} | "
                f"{pair(self.ganlab_mem, self.plain_mem, fmt_mib)} ({mem_ratio}) |")


HEADER = ("| case | gen. it/s ganlab / plain | ratio median [min-max] | real samples/s ganlab / plain | "
          "GFLOP/it | MFU ganlab / plain | peak mem ganlab / plain (ratio) |\n|---|---|---|---|---|---|---|")


def bench_step(case: StepCase, root: str | None = None, seed: int = 0, warmup: int | None = None,
               iters: int | None = None, repeats: int | None = None,
               extra: tuple[str, ...] = (), warm: bool = True) -> StepResult | str:
    """One case: a StepResult, or the line saying why it was skipped. `extra`: more config overrides; `warm`: run
    the untimed warm-up pair first."""
    if case.device == "cuda" and not torch.cuda.is_available():
        return f"| {case.name} | skipped: needs a GPU |"
    warmup = case.warmup if warmup is None else warmup
    repeats = case.repeats if repeats is None else repeats
    device = torch.device(case.device)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_cfg(case, out, seed, root, extra)
        dm = build(cfg.data, "data", seed=cfg.seed)
        dm.setup("fit")
        # untimed warm-up pair (allocator, kernels' first calls, imports), which also sizes the timed runs; then
        # the timed pairs, ABBA
        if warm:
            run_ganlab(cfg.copy(), dm, device, 1, 1)
        if iters is None:
            per_it = run_plain(cfg, dm, device, 1, 3)[0].seconds / 3
            iters = min(max(round(case.seconds / per_it), 5), 2000)
        elif warm:
            run_plain(cfg, dm, device, 1, 1)
        g_runs, p_runs = [], []
        for i in range(repeats):
            sides = [lambda: g_runs.append(run_ganlab(cfg.copy(), dm, device, warmup, iters)),
                     lambda: p_runs.append(run_plain(cfg, dm, device, warmup, iters)[0])]
            for side in sides if i % 2 == 0 else sides[::-1]:
                side()
        _, loop = run_plain(cfg, dm, device, 0, 0)
        # one iteration: n_critic critic steps (the penalties' double backward) + G step, averaged over a lazy R1's
        # period (r1_every iterations hold n_critic due critic steps)
        period = loop.r1_every if loop.r1 else 1
        flops = count_flops(lambda: [loop.iteration() for _ in range(period)]) // period
    if device.type == "cuda":
        peak, peak_what = gpu_peak(torch.cuda.get_device_name(device), str(cfg.trainer.precision))
    else:
        peak, peak_what = cpu_peak()
    g_it = [iters / r.seconds for r in g_runs]
    p_it = [iters / r.seconds for r in p_runs]
    per_it = int(cfg.model.n_critic) * dm.batch_size
    g_med, p_med = median_spread(g_it)[0], median_spread(p_it)[0]

    def mem(runs):
        vals = [r.peak_mem for r in runs]
        return None if any(v is None for v in vals) else int(median_spread(vals)[0])

    return StepResult(
        case.name, case.label, iters, repeats, g_med, p_med, median_spread([g / p for g, p in zip(g_it, p_it)]),
        g_med * per_it, p_med * per_it, flops, peak, peak_what,
        None if peak is None else flops * g_med / peak, None if peak is None else flops * p_med / peak,
        mem(g_runs), mem(p_runs), PeakMemory(device).what, g_runs[-1].losses, p_runs[-1].losses)
