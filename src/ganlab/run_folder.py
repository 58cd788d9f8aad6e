"""A run folder has one writer at a time, and a launch writes nothing there until the folder is its own.

`claim(run_dir)` holds an exclusive OS lock (flock) on `<run_dir>/.lock` for the launch's whole life, or raises
FolderInUse naming the folder and the pid, host and start of the launch that holds it. The kernel drops a lock
when its process ends, however it ends (SIGKILL included), so a killed launch never blocks the next. Under DDP
rank zero claims the folder for the whole launch (the other ranks are its children, or its peers under SLURM);
each job of a multirun claims its own folder, and gives it back when the job ends.

A launch that resume.plan accepts (the folder holds nothing yet, or this run unfinished) then calls `accept`:
- the leftovers of killed atomic writers (checkpoint_io's `.<name>.<pid>-<hex>.tmp`) anywhere in the folder go,
  unless their pid is a live process of this host (an evaluate.py writing beside a checkpoint); nothing else goes;
- every folder the run writes to must take a new file, so a folder it may not write to is one line before
  training, not a failure at the first checkpoint;
- Hydra's record, `.hydra/` (config.yaml, hydra.yaml, overrides.yaml), is written. conf/train.yaml turns Hydra's
  own writing off (`hydra.output_subdir: null`): Hydra writes before any check, so a refused launch would have
  rewritten the record of the run it was refused for;
- status.json says `running`, with this launch's pid, host and start. A `running` status found there belonged to
  a launch that was killed: it would hold the lock otherwise. `accept` returns it, for the launch to report.

A refused launch (folder in use, or holding a run of other settings) leaves every file of the folder as it was:
the lock file it created, in a folder that had none, goes again.

Every launch that was accepted ends by writing `<run_dir>/status.json` (launch.py, the one place), atomically:

    {"status": "running" | "completed" | "failed" | "diverged" | "config_error" | "interrupted" | "stopped",
     "error": "<one line>" or null,
     "metrics": {"train/d_loss": 0.69, ...},     # the final value of every logged metric, as floats
     "overrides": ["loss=ns", "seed=1"],         # the job's command-line overrides
     "launch": {"pid": 4242, "host": "node7", "started": "2026-...T10:00:00+00:00"}}   # the launch that wrote it

and, for failed, diverged and config_error runs, the traceback in `<run_dir>/error.txt`. `interrupted` (a
signal) and `stopped` (the time limit, trainer.max_time) say in `error` at which iteration of how many; the same
command continues them (resume.py). A status that says `running` while no launch holds the folder (`in_use`)
belonged to a launch that was killed.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from .checkpoint_io import cannot_write, temporary_name, write_atomically

STATUSES = ("running", "completed", "failed", "diverged", "config_error", "interrupted", "stopped")
LOCK = ".lock"
TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")  # checkpoint_io.temporary_name; group 1: the pid
WAIT = 2.0  # seconds a claim retries while the holder is not known yet (it is starting, or a refused launch)


class FolderInUse(Exception):
    """Another launch holds the run folder."""


def this_launch() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds")}


class Claim:
    """The lock on one run folder, held from `claim` to the end of the launch."""

    def __init__(self, run_dir: Path, fd: int, created: bool, overrides: Sequence[str]):
        self.run_dir, self.fd, self.created, self.overrides = run_dir, fd, created, list(overrides)
        self.launch = this_launch()
        self.accepted = False

    def write_status(self, status: str, error: str | None = None, metrics: Mapping[str, float] | None = None,
                     **launch: Any) -> Path:
        """This launch's status.json (`launch`: more about it, e.g. the iteration it starts from)."""
        return write_status(self.run_dir, status, error, metrics, self.overrides, {**self.launch, **launch})

    def accept(self, hydra_files: Mapping[str, str], writes_to: Iterable[str | Path], start: int) -> dict | None:
        """The launch goes ahead: leftovers go, the folders it writes to are checked, Hydra's record and a
        `running` status are written, the lock names this launch. Returns the status the folder held before
        (`running`: that launch was killed), or None."""
        self.accepted = True
        remove_leftovers(self.run_dir)
        for folder in map(Path, writes_to):
            if not folder.resolve().is_relative_to(self.run_dir.resolve()):  # a checkpoint folder elsewhere
                remove_leftovers(folder)
            check_writable(folder)
        previous = read_status(self.run_dir)
        for name, text in hydra_files.items():  # file name -> its YAML text
            write_atomically(self.run_dir / ".hydra" / name, lambda tmp, text=text: tmp.write_text(text))
        self.write_status("running", from_iteration=start)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (json.dumps(self.launch) + "\n").encode(), 0)
        return previous

    def release(self) -> None:
        if self.created and not self.accepted:  # a refused launch leaves no lock file where there was none
            (self.run_dir / LOCK).unlink(missing_ok=True)
        if self.accepted:  # the lock names no one once it is free (a killed launch's name stays: it is dead)
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # drops the lock


@contextmanager
def claim(run_dir: str | Path, overrides: Sequence[str] = ()) -> Iterator[Claim]:
    """Hold `run_dir` for this launch of `overrides` (see the module's docstring); FolderInUse if another launch
    holds it."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(run_dir / LOCK, e) from None
    held = _lock(run_dir, overrides)
    try:
        yield held
    finally:
        held.release()


def _lock(run_dir: Path, overrides: Sequence[str]) -> Claim:
    path, deadline = run_dir / LOCK, time.monotonic() + WAIT
    while True:
        created = not path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise cannot_write(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _holder(path)
            if holder is not None or time.monotonic() > deadline:
                who = (f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}" if holder
                       else "a launch that is starting or being refused")
                raise FolderInUse(f"hydra.run.dir={run_dir} is in use by another launch ({who}): wait for it to "
                                  f"end, or stop it (its status.json says how far it got); a second launch into "
                                  f"the same folder would write the same files") from None
            time.sleep(0.05)
            continue
        try:  # the file we locked must still be the folder's lock file (a refused launch may have removed it)
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return Claim(run_dir, fd, created, overrides)
        os.close(fd)


def _holder(path: Path) -> dict | None:
    """The launch named in a held lock file, if it is still alive here (or on another host); None while the
    holder has not written itself there yet (it is starting, or about to be refused)."""
    try:
        holder = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not {"pid", "host", "started"} <= set(holder):
        return None
    if holder["host"] == socket.gethostname() and not _alive(int(holder["pid"])):
        return None  # an earlier holder's record: the one holding the lock now has not written itself yet
    return holder


def in_use(run_dir: str | Path) -> bool:
    """Whether a launch holds `run_dir` now (a shared lock taken and dropped at once; nothing is written)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def write_status(run_dir: str | Path, status: str, error: str | None = None,
                 metrics: Mapping[str, float] | None = None, overrides: Sequence[str] = (),
                 launch: Mapping[str, Any] | None = None) -> Path:
    """`<run_dir>/status.json`, replaced whole (never half-written). Metrics by their logged names (train/...,
    val/...): the progress bar's short copies of the losses and the signal marker are left out. `launch`: the
    launch that writes it (pid, host, start), this process's when not given."""
    assert status in STATUSES, status
    logged = {k: float(v) for k, v in (metrics or {}).items() if k.startswith(("train/", "val/"))}
    record = {"status": status, "error": error, "metrics": logged, "overrides": list(overrides),
              "launch": dict(launch) if launch is not None else this_launch()}
    text = json.dumps(record, indent=2, allow_nan=True) + "\n"
    return write_atomically(Path(run_dir) / "status.json", lambda tmp: tmp.write_text(text))


def write_error(run_dir: str | Path, error: BaseException) -> Path:
    """The traceback of a run that did not complete: `<run_dir>/error.txt`."""
    text = "".join(traceback.format_exception(error))
    return write_atomically(Path(run_dir) / "error.txt", lambda tmp: tmp.write_text(text))


def read_status(run_dir: str | Path) -> dict | None:
    """status.json as written (None when absent or unreadable)."""
    try:
        status = json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and "status" in status else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary files of killed atomic writers anywhere under `folder`; a live writer's stay."""
    if not folder.is_dir():
        return
    for f in folder.rglob(".*.tmp"):
        match = TEMPORARY.match(f.name)
        if match and f.is_file() and (int(match.group(1)) == os.getpid() or not _alive(int(match.group(1)))):
            f.unlink(missing_ok=True)


def check_writable(folder: Path) -> None:
    """A file can be made in `folder` (made as needed): else WriteError naming it, before any training."""
    probe = temporary_name(folder / "write-check")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        probe.unlink()
    except OSError as e:
        raise cannot_write(folder / "(a new file)", e) from None
