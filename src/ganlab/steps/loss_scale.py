"""fp16's loss-scale overflows (trainer.precision=16-mixed: autocast to float16 and a torch.amp.GradScaler).

The gradient penalties take their inner gradients on scaled outputs (regularizers.py), and a scale too large makes
the *loss* inf, not only the gradients. So a non-finite loss is first taken for a loss-scale overflow: while the
scale is at or above `floor`, the step is dropped (it still counts, like a skipped one), the scale is lowered as
GradScaler.update lowers it on inf gradients (x backoff_factor, growth tracker reset) and `overflows` counted.
Under the floor it is a non-finite step like any other (nonfinite.py), and `hint` ends its message: a lower scale
cannot help, bf16 can. Inf *gradients* with a finite loss are GradScaler's own business: it skips those steps.

GradScaler has no public way to reset its growth tracker (the count of good steps since the last change, after
growth_interval of which the scale grows): `update(new_scale=...)` sets the scale but leaves the tracker as it was
(torch 2.14, torch/amp/grad_scaler.py), so the scale could grow again sooner than after GradScaler's own backoff.
The backoff therefore goes through the public state_dict/load_state_dict with the documented "_growth_tracker"
entry (the one private name ganlab keeps: docs/performance.md, "Private APIs kept");
tests/test_step_policies.py fails if GradScaler stops saving or honouring it.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch.amp import GradScaler


class LossScaleBackoff:
    """The overflow policy and its counter `overflows`: fp16 steps dropped so far to lower the scale, both nets."""

    def __init__(self, floor: float = 1.0):
        #: Under this scale a non-finite loss is no longer taken for an overflow of the scale. At 1 the scaled
        #: penalty is the unscaled one: an inf then is fp16's range, not the scale's.
        self.floor = float(floor)
        self.overflows = 0

    @staticmethod
    def used(scaler: GradScaler, device: torch.device) -> Tensor:
        """The scale the step's backward used: a 0-dim float32 tensor on `device`, for the log (train/loss_scale).
        GradScaler.get_scale() is a host sync: the step reads it after its finite check, whose sync has already
        drained the launch queue, so this one waits only for its own 4-byte copy."""
        return torch.full((), scaler.get_scale(), dtype=torch.float32, device=device)

    def overflowed(self, scaler: GradScaler) -> bool:
        """At a non-finite loss: True when it is taken for an overflow (scale >= floor): the scale is backed off and
        the overflow counted, and the caller drops the step. False once the scale is under the floor."""
        scale = scaler.get_scale()  # on the host (a sync, on a bad step only)
        if scale < self.floor:
            return False
        back_off(scaler, scale * scaler.get_backoff_factor())
        self.overflows += 1
        return True

    @staticmethod
    def hint(scaler: GradScaler | None) -> str:
        """How a non-finite step's message ends under fp16 (the scale already under the floor), "" without it."""
        if scaler is None:
            return ""
        return (f" in fp16 (16-mixed), with the loss scale already down to {scaler.get_scale():g}: not an overflow "
                f"a lower scale avoids; use trainer.precision=bf16-mixed (or 32-true)")

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"overflows": self.overflows}

    def load_state_dict(self, state: Mapping) -> None:
        """A checkpoint's counter; one written before it was saved starts it at 0."""
        self.overflows = int(state.get("overflows", 0))


def back_off(scaler: GradScaler, scale: float) -> None:
    """Set the scaler's scale to `scale` and reset its growth tracker, as GradScaler.update does on inf gradients."""
    state = scaler.state_dict()
    state.update(scale=scale, _growth_tracker=0)
    scaler.load_state_dict(state)
