"""csv/metrics.csv, always on: one row per logged step, appended as it is logged, and a run that continues
keeps the rows it already has.

Lightning's CSVLogger deletes an existing metrics.csv when it starts (a run continued in its own folder would
lose its history) and rewrites the whole file in place when a new column appears (a kill then loses it all).
This logger writes the same format (a header of the sorted keys, `step` among them; then one row per call):
- started with `start` = the iteration a run continues after (0 for a new run), it keeps the rows with step <=
  start and drops the rest: those a killed process logged after its last checkpoint, which the continued run
  logs again, so there is no duplicate and no gap. A last line without its newline (killed mid-write) is
  dropped too.
- a row with the known columns is appended (and flushed to the OS at once); a new column rewrites the file
  atomically (checkpoint_io.write_atomically), never in place.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from .checkpoint_io import write_atomically


def read_rows(path: Path) -> list[dict[str, str]]:
    """The whole rows of a metrics.csv: a last line cut short (no newline) is not one."""
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return [row for row in csv.DictReader(io.StringIO(text, newline="")) if None not in row.values()]


def _step(row: Mapping[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class CSVLog(Logger):
    def __init__(self, save_dir: str, name: str = "csv", start: int = 0):
        super().__init__()
        self._save_dir, self._name = str(save_dir), name
        self.path = Path(save_dir) / name / "metrics.csv"
        self.keys: list[str] = []
        self.hparams: dict[str, Any] = {}
        self._start = int(start)
        self._opened = False

    def _open(self) -> None:
        """On the first write (rank zero only): keep the rows up to `start` of a file already there."""
        self._opened = True
        if not self.path.is_file():
            return
        rows = [r for r in read_rows(self.path) if _step(r) <= self._start]
        self.keys = sorted(set().union(*rows)) if rows else []
        self._rewrite(rows)

    def _rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        out = io.StringIO(newline="")
        if self.keys:
            writer = csv.DictWriter(out, fieldnames=self.keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        write_atomically(self.path, lambda tmp: tmp.write_text(out.getvalue()))

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any], *args, **kwargs) -> None:
        """hparams.yaml: everything logged so far (the run's config, then e.g. metrics/features)."""
        self.hparams.update(params)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path.parent / "hparams.yaml", lambda tmp: save_hparams_to_yaml(tmp, self.hparams))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self._opened:
            self._open()
        row = {k: float(v) for k, v in metrics.items()}
        row["step"] = step
        if set(row) - set(self.keys):  # a new column: the whole file again, with the new header
            rows = read_rows(self.path) if self.path.is_file() and self.keys else []
            self.keys = sorted(set(self.keys) | set(row))
            self._rewrite(rows + [row])
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.keys, lineterminator="\n").writerow(row)
