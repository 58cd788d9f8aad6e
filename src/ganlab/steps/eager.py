"""The eager executor: runs each step as it comes and judges it on the host before its optimizer steps.

A step is defined once, in GANModule (`critic_step`, `generator_step`); an executor runs it and lends it its
optimizers and three verbs: `zero_grad`, `backward` and `accepts` (whether the optimizer may step). This one uses
Lightning's optimizers and backward (fp16's loss scaler, the precision plugin) and checks every step's loss and
gradients on the host: one fused reduction and one sync per optimizer step, as AMP's GradScaler costs too; free on
a CPU, on a GPU it drains the launch queue once per step. Not the weights: finite weights and gradients give finite
weights, short of an overflow in the update itself, which the next step's loss shows; the weights are checked once
per checkpoint instead (callbacks/checkpoint.py), so no checkpoint holds NaN/inf. What a bad step does is up to the
step policies: steps/nonfinite.py (stop | skip), steps/loss_scale.py (fp16 overflows), steps/rank_average.py (DDP).
The fast executor (fast.py) runs the same steps with static inputs, a device-side flag and CUDA graphs.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..divergence import all_finite
from .nonfinite import Net
from .rank_average import average_over_ranks


class EagerSteps:
    def __init__(self, module):
        self.m = module
        self.opt_g, self.opt_d = module.optimizer_pair()  # Lightning's (G's is None when G does not train)

    def critic(self, real: Tensor, y: Tensor | None) -> None:
        self.m.critic_step(real, y, self)

    def generator(self, real: Tensor, y: Tensor | None) -> None:
        self.m.generator_step(real, y, self)

    # ---- the verbs a step uses ----------------------------------------------------------------------------------
    def zero_grad(self, opt) -> None:
        opt.zero_grad(set_to_none=True)

    def backward(self, loss: Tensor) -> None:
        self.m.manual_backward(loss)

    def accepts(self, opt, loss: Tensor, net: nn.Module, logs: dict[str, Tensor], which: Net, iteration: int) -> bool:
        """Whether `net`'s step may be taken: its loss and gradients are finite (under DDP averaged over the ranks
        first, so every rank reaches the same verdict). A taken step's values go to the row. A bad one is dropped
        (gradients cleared): under fp16 first taken for an overflow of the loss scale (only the loss is checked
        there, inf gradients being routine), else stop or skip (model.on_nonfinite)."""
        m = self.m
        if m.ranks.world > 1:
            loss = average_over_ranks([p for group in opt.param_groups for p in group["params"]], loss, m.ranks.world)
        scaler = m.loss_scaler
        grads = [] if scaler is not None else [p.grad for p in net.parameters() if p.grad is not None]
        finite = bool(all_finite([loss, *grads]))  # the sync
        if scaler is not None:  # the scale this backward used (read after the sync, so it waits for nothing more)
            m.row.add({"train/loss_scale": m.backoff.used(scaler, loss.device)})
        if finite:
            m.nonfinite.taken(which)
            m.row.add(logs)
            return True
        opt.zero_grad(set_to_none=True)  # the step is dropped: this net is left as it was
        if scaler is None or not m.backoff.overflowed(scaler):  # not an overflow a lower scale avoids
            m.nonfinite.dropped(which, logs, iteration, m.d_steps, m.backoff.hint(scaler))
        return False

    # ---- the row and the checkpoint -------------------------------------------------------------------------------
    def collect(self) -> dict[str, list[Tensor]]:
        """Values kept outside the module's row (none: `accepts` adds them there)."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        pass
