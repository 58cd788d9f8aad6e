"""The run's training time: wall-clock seconds from the start of training, over all the launches of a run that
was continued (resume.py), metric evaluations, sample grids and checkpoints included. A launch continues from
the time its checkpoint holds, so the time a killed launch spent after its last checkpoint (and restarting) is
not counted: it is the time an uninterrupted run would have taken on this machine. Logged with every row as
`time/seconds` (log.py), so report.py can plot quality against time as well as iterations."""
from __future__ import annotations

import time


class RunClock:
    def __init__(self):
        self.before = 0.0  # seconds of the launches before this one (from the checkpoint)
        self.started: float | None = None  # monotonic time this launch's training started

    def start(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return self.before + (time.monotonic() - self.started if self.started is not None else 0.0)

    def state_dict(self) -> dict:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: dict) -> None:
        self.before = float(state["seconds"])
        if self.started is not None:  # loaded after this launch started: count from now
            self.started = time.monotonic()
