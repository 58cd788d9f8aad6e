"""Divergence (NaN/inf) never loses a run.

- GANModule checks each step's loss and gradients before `optimizer.step()` (`model.on_nonfinite`,
  steps/nonfinite.py): `stop` raises Diverged, `skip` drops the step and raises only after `model.max_skips` bad
  steps of one net in a row.
- Checkpointer checks the weights before writing, so checkpoints/last.ckpt is always the last good one.
- LastGoodSamples (a callback): when Diverged ends the run, it draws the last good checkpoint's generator to
  samples/diverged_last_good.png and adds both paths to the message (`ganlab: diverged: ...` from train.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.nn.utils import get_total_norm

from .images import save_samples
from .sampling import generate, load_generator

FIX = ("lower the learning rates (optim.g.lr, optim.d.lr), add a penalty (regularizer=[gp] or [r1]), "
       "skip bad steps (model.on_nonfinite=skip), or resume from the last checkpoint "
       "(ckpt_path=<run>/checkpoints/last.ckpt)")


class Diverged(RuntimeError):
    """Training produced NaN/inf. str(e) is one line: what, where, the fix and, once LastGoodSamples has run,
    the last good checkpoint and its samples."""

    def __init__(self, what: str, iteration: int, d_steps: int):
        super().__init__(what, iteration, d_steps)
        self.what, self.iteration, self.d_steps = what, iteration, d_steps
        self.last_good = ""  # set by LastGoodSamples

    def __str__(self) -> str:
        where = f"iteration {self.iteration} ({self.d_steps} critic step{'s' * (self.d_steps != 1)} done)"
        return " ".join(filter(None, [f"{where}: {self.what}. Fix: {FIX}.", self.last_good]))


def all_finite(tensors: Iterable[Tensor]) -> Tensor:
    """True when every floating-point tensor holds only finite values: a 0-dim bool tensor on their device, so
    no host sync until someone reads it. Their total L2 norm (torch.nn.utils.get_total_norm: one fused norm per
    device and dtype, then the norm of those norms) is NaN/inf exactly when a tensor holds a NaN/inf, or when the
    norm passes ~1.8e19 (its square, float32's range: diverged by any measure). fp16 tensors are taken in float32 (a
    float16 norm would overflow at 65504, from finite values). ~150 us for DCGAN's critic on a CPU core, where the
    max-|x| norm would not overflow but takes ~1.7 ms (torch 2.14, no fused CPU kernel for it)."""
    ts = [t.detach().float() if t.dtype == torch.float16 else t.detach() for t in tensors if t.is_floating_point()]
    if not ts:
        return torch.tensor(True)
    return get_total_norm(ts).isfinite()


class LastGoodSamples(L.Callback):
    """On Diverged: `n` samples of the last good generator (its EMA copy if kept) from `ckpt` to `out` (a grid of
    images, or a scatter plot over real points for toy data), on the CPU, latent seed 0."""

    def __init__(self, ckpt: str, out: str, n: int = 64):
        self.ckpt, self.out, self.n = Path(ckpt), Path(out), int(n)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, Diverged) or not trainer.is_global_zero:
            return
        if not self.ckpt.is_file():
            exception.last_good = (f"No checkpoint was written before it ({self.ckpt} does not exist): nothing to "
                                   f"resume from; write them more often with callbacks.checkpoint.every=N.")
            return
        try:
            g, info = load_generator(self.ckpt)
            x = generate(g, self.n)  # (n, C, H, W) images or (n, D) toy points
            real = trainer.datamodule.real(max(self.n, 1000)) if x.dim() == 2 else None
            save_samples(x, self.out, real)
        except Exception as e:  # the message must still come out whole: say what went wrong instead
            exception.last_good = f"Last good checkpoint: {self.ckpt}; could not sample it: {e}."
            return
        exception.last_good = (f"Last good checkpoint: {self.ckpt} (iteration {info['iteration']}); "
                               f"its samples: {self.out}.")
