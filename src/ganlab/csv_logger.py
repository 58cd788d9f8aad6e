"""csv/metrics.csv, always on: one row per logged step, appended as it is logged, and a run that continues
keeps the rows it already has.

Lightning's CSVLogger deletes an existing metrics.csv when it starts (a run continued in its own folder would
lose its history) and rewrites the whole file in place when a new column appears (a kill then loses it all).
This logger writes the same format (a header of the sorted keys, `step` among them; then one row per call):
- every checkpoint keeps a copy of the rows logged up to it (`snapshot`, stored by callbacks/run_state.py), so
  the file can be rebuilt: a run continued from its own checkpoint (`start` = its iteration) keeps the file's
  rows with step <= start when they hold the checkpoint's rows, and drops the rest (those a killed process
  logged after its last checkpoint, which the continued run logs again: no duplicate, no gap). A file that was
  deleted, cut short, edited or damaged is rebuilt from the checkpoint's copy instead; a damaged one is kept
  beside it as metrics.damaged.csv, and the launch says so. A last line without its newline (killed mid-write)
  is no row.
- a row with the known columns is appended (and flushed to the OS at once); a new column rewrites the file
  atomically (checkpoint_io.write_atomically), never in place.
"""
from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from .checkpoint_io import cannot_write, link_unused, write_atomically
from .config import ConfigError


def parse_rows(text: str) -> list[dict[str, str]]:
    """The whole rows of a metrics.csv's text: a last line cut short (no newline) is not one. ValueError when
    the text is not such a file (no `step` column, a row of another width, a step that is no number)."""
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
    except csv.Error as e:
        raise ValueError(f"not CSV ({e})") from None
    if rows and "step" not in (reader.fieldnames or []):
        raise ValueError("no step column")
    for n, row in enumerate(rows, start=2):
        if None in row or None in row.values() or not _is_number(row["step"]):
            raise ValueError(f"line {n} is not a row of it")
    return rows


def read_rows(path: Path) -> list[dict[str, str]]:
    """parse_rows of a file: ValueError also when it is not UTF-8 text."""
    try:
        return parse_rows(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def final_values(rows: Sequence[Mapping[str, str]]) -> dict[str, float]:
    """The last value of every logged metric (train/*, val/*) in the rows."""
    out: dict[str, float] = {}
    for row in rows:
        out.update({k: float(v) for k, v in row.items() if k.startswith(("train/", "val/")) and v != ""})
    return out


def _is_number(value: str) -> bool:
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _step(row: Mapping[str, Any]) -> float:
    return float(row["step"])


def _cells(row: Mapping[str, Any]) -> dict[str, str]:
    """A row as the file holds it, empty cells left out: how two copies of a row are compared."""
    return {k: str(v) for k, v in row.items() if v is not None and str(v) != ""}


class CSVLog(Logger):
    def __init__(self, save_dir: str, name: str = "csv", start: int = 0):
        super().__init__()
        self._save_dir, self._name = str(save_dir), name
        self.path = Path(save_dir) / name / "metrics.csv"
        self.keys: list[str] = []
        self.rows: list[dict[str, Any]] = []  # every row the file holds, as written
        self._lines: list[str] = []  # those rows encoded under `keys` (the file's body)
        self.hparams: dict[str, Any] = {}
        self._start = int(start)
        self._opened = False

    @rank_zero_only
    def open(self, saved: str | None = None) -> None:
        """Before the first row (rank zero only): the rows up to `start` the file keeps. `saved`: the copy in
        the checkpoint the run continues from (its own), which wins over a file that does not hold it."""
        self._opened = True
        rows: list[dict[str, Any]] = []
        if self._start > 0:
            have, problem = self._read()
            if saved is None:  # a new run's rows, or a checkpoint written before it kept them
                if problem is not None and problem != "is missing":
                    raise ConfigError(f"{self.path} {problem}, and the checkpoint this run goes on from holds no "
                                      f"copy of its rows: move the file away to continue without them")
                rows = have
            else:
                kept = parse_rows(saved)
                if problem is None and [_cells(r) for r in have[:len(kept)]] == [_cells(r) for r in kept]:
                    rows = have
                else:
                    rows = kept
                    self._rebuilt(problem or "lacks rows the checkpoint saw", len(kept))
        elif not self.path.is_file():
            return
        self._set(rows)
        self._rewrite()

    def _read(self) -> tuple[list[dict[str, str]], str | None]:
        """The file's rows with step <= start, and what is wrong with it (None: nothing)."""
        try:
            rows = read_rows(self.path)
        except FileNotFoundError:
            return [], "is missing"
        except ValueError as e:
            return [], f"cannot be read ({e})"
        except OSError as e:
            raise ConfigError(f"{self.path} cannot be read: {e.strerror or e}") from None
        return [r for r in rows if _step(r) <= self._start], None

    def _rebuilt(self, problem: str, n: int) -> None:
        aside, damaged = "", self.path.with_name("metrics.damaged.csv")
        if self.path.is_file():  # what a run wrote is never deleted: a damaged file stays, under another name
            try:
                aside = f"; the file found there is kept as {link_unused(self.path, damaged)}"
            except OSError as e:
                raise cannot_write(damaged, e) from None
        print(f"ganlab: {self.path} {problem}: rebuilt from the checkpoint's copy ({n} rows, up to iteration "
              f"{self._start}){aside}", file=sys.stderr, flush=True)

    def _set(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.keys = sorted(set().union(*rows)) if rows else []
        self._lines = [self._encode(r) for r in rows]

    def _encode(self, row: Mapping[str, Any]) -> str:
        out = io.StringIO(newline="")
        csv.DictWriter(out, fieldnames=self.keys, lineterminator="\n").writerow(row)
        return out.getvalue()

    def snapshot(self) -> str:
        """The file's text as this logger wrote it (a checkpoint keeps it): header and rows."""
        if not self.keys:
            return ""
        out = io.StringIO(newline="")
        csv.DictWriter(out, fieldnames=self.keys, lineterminator="\n").writeheader()
        return out.getvalue() + "".join(self._lines)

    def _rewrite(self) -> None:
        text = self.snapshot()
        write_atomically(self.path, lambda tmp: tmp.write_text(text))

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
        write_atomically(self.path.parent / "hparams.yaml", lambda tmp: save_hparams_to_yaml(tmp, self.hparams))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self._opened:
            self.open()
        row = {k: float(v) for k, v in metrics.items()}
        row["step"] = step
        self.rows.append(row)
        if set(row) - set(self.keys):  # a new column: the whole file again, with the new header
            self._set(self.rows)
            self._rewrite()
            return
        line = self._encode(row)
        self._lines.append(line)
        try:
            with open(self.path, "a", newline="") as f:
                f.write(line)
        except OSError as e:
            raise cannot_write(self.path, e) from None
