"""What a step whose loss or gradients hold NaN/inf does (`model.on_nonfinite`, `model.max_skips`).

`stop` raises Diverged at the first such step. `skip` drops it (the caller leaves the net as it was; the step still
counts, so the run's length and schedules are those of the config) and raises once `max_skips` steps of one net
in a row were dropped: a streak is one net's, and a taken step of that net ends it.
The counters go into checkpoints (GANModule.on_save_checkpoint, under "ganlab_skips"), so a resumed run goes on
counting where it stopped.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from ..divergence import Diverged

NETS = ("critic", "generator")


class NonFiniteSteps:
    """The stop/skip policy and its counters: `skipped` (both nets, the run so far) and `in_a_row` (per net)."""

    def __init__(self, mode: str = "stop", max_skips: int = 100):
        if mode not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {mode!r}")
        if max_skips < 1:
            raise ValueError(f"max_skips must be >= 1, got {max_skips}")
        self.mode, self.max_skips = mode, int(max_skips)
        self.skipped = 0  # steps dropped as non-finite, both nets
        self.in_a_row = dict.fromkeys(NETS, 0)  # per net: max_skips is about one net's streak

    def taken(self, which: str) -> None:
        """`which` net ("critic" | "generator") took a finite step: its streak of dropped steps ends."""
        self.in_a_row[which] = 0

    def dropped(self, which: str, logs: Mapping[str, Tensor], iteration: int, d_steps: int, hint: str = "") -> None:
        """`which` net's step was non-finite and will not be taken: raise Diverged (stop, or skip's max_skips-th in
        a row), else count it. `logs`: the step's logged values (0-dim tensors), named in the message when non-finite
        (their gradients otherwise); `hint` ends the message (fp16's, loss_scale.py)."""
        bad = what_was_bad(logs)
        if self.mode == "stop":
            raise Diverged(f"the {which} step was non-finite ({bad}){hint}", iteration, d_steps)
        self.skipped += 1
        self.in_a_row[which] += 1
        if self.in_a_row[which] >= self.max_skips:
            raise Diverged(f"{self.max_skips} {which} steps in a row were non-finite and skipped (model.max_skips; "
                           f"the last: {bad}){hint}", iteration, d_steps)

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "in_a_row": dict(self.in_a_row)}

    def load_state_dict(self, state: Mapping) -> None:
        """A checkpoint's counters; one written before they were saved (no keys) starts them at 0."""
        self.skipped = int(state.get("skipped", 0))
        self.in_a_row = {**dict.fromkeys(NETS, 0), **state.get("in_a_row", {})}


def what_was_bad(logs: Mapping[str, Tensor]) -> str:
    """The non-finite logged values as `name=value` (one host sync each: on a bad step only), or "its gradients"."""
    return ", ".join(f"{k}={v.item():g}" for k, v in logs.items() if not v.isfinite()) or "its gradients"
