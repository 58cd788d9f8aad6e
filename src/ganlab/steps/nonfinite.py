"""What a step whose loss or gradients hold NaN/inf does (`model.on_nonfinite`, `model.max_skips`).

`stop` raises Diverged at the first such step. `skip` drops it (the caller leaves the net as it was; the step still
counts, so the run's length and schedules are those of the config) and raises once `max_skips` steps of one net
in a row were dropped: a streak is one net's, and a taken step of that net ends it.
The counters go into checkpoints (GANModule.on_save_checkpoint, under "ganlab_skips"), so a resumed run goes on
counting where it stopped.
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from torch import Tensor

from ..divergence import Diverged


class Net(Enum):
    """The net a step trains (its name in messages and in the checkpoint's counters)."""
    CRITIC = "critic"
    GENERATOR = "generator"


class OnNonfinite(Enum):
    """model.on_nonfinite."""
    STOP = "stop"  # raise Diverged at the first non-finite step
    SKIP = "skip"  # drop it, and raise after model.max_skips in a row of one net


class NonFiniteSteps:
    """The stop/skip policy and its counters: `skipped` (both nets, the run so far) and `in_a_row` (per net)."""

    def __init__(self, mode: str | OnNonfinite = "stop", max_skips: int = 100):
        try:
            self.mode = OnNonfinite(mode)
        except ValueError:
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {mode!r}") from None
        if max_skips < 1:
            raise ValueError(f"max_skips must be >= 1, got {max_skips}")
        self.max_skips = int(max_skips)
        self.skipped = 0  # steps dropped as non-finite, both nets
        self.in_a_row = dict.fromkeys(Net, 0)  # per net: max_skips is about one net's streak

    def taken(self, which: Net) -> None:
        """`which` net took a finite step: its streak of dropped steps ends."""
        self.in_a_row[which] = 0

    def dropped(self, which: Net, logs: Mapping[str, Tensor], iteration: int, d_steps: int, hint: str = "") -> None:
        """`which` net's step was non-finite and will not be taken: raise Diverged (stop, or skip's max_skips-th in
        a row), else count it. `logs`: the step's logged values (0-dim tensors), named in the message when non-finite
        (their gradients otherwise); `hint` ends the message (fp16's, loss_scale.py)."""
        bad = what_was_bad(logs)
        if self.mode is OnNonfinite.STOP:
            raise Diverged(f"the {which.value} step was non-finite ({bad}){hint}", iteration, d_steps)
        self.skipped += 1
        self.in_a_row[which] += 1
        if self.in_a_row[which] >= self.max_skips:
            raise Diverged(f"{self.max_skips} {which.value} steps in a row were non-finite and skipped (model.max_skips; "
                           f"the last: {bad}){hint}", iteration, d_steps)

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "in_a_row": {net.value: n for net, n in self.in_a_row.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        """A checkpoint's counters; one written before they were saved (no keys) starts them at 0."""
        self.skipped = int(state.get("skipped", 0))
        saved = state.get("in_a_row", {})
        self.in_a_row = {net: int(saved.get(net.value, 0)) for net in Net}


def what_was_bad(logs: Mapping[str, Tensor]) -> str:
    """The non-finite logged values as `name=value` (one host sync each: on a bad step only), or "its gradients"."""
    return ", ".join(f"{k}={v.item():g}" for k, v in logs.items() if not v.isfinite()) or "its gradients"
