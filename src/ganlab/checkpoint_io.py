"""Checkpoint files: written atomically, read defensively.

Writes: the file is written beside its target under a name of its own, flushed to disk, then renamed over it,
so a crash or a kill mid-write leaves the previous checkpoint intact, never a truncated one, and processes
writing the same file at once (sweep jobs filling the statistics cache) each leave a whole one.

A write the system refuses (disk full, a file-size limit, no permission, a read-only file system) is one
WriteError naming the file, the cause and the fix, never a traceback that names a temporary file or none.

Reads (`read_checkpoint`): torch.load(weights_only=True), which unpickles tensors and plain values only and
refuses any other object; every way a file can be wrong (missing, cut short, not a torch file, holding
code, not ganlab's) becomes one ConfigError naming the file and what is wrong with it.
"""
from __future__ import annotations

import errno
import os
import pickle
import re
import secrets
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .config import ConfigError

# What ganlab's checkpoints hold besides Lightning's own entries (module.py, callbacks/run_state.py).
GANLAB_KEYS = ("config", "shape", "ganlab_steps", "state_dict")


class WriteError(Exception):
    """A file the system would not let the run write: one line, the file, the cause, the fix."""


# errno -> (the cause, the fix) for the writes a run can do nothing about; any other OSError stays a bug's traceback
WRITE_CAUSES = {
    errno.ENOSPC: ("no space left on the device", "free space there (df -h {folder}) or use another hydra.run.dir"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space there (quota -s) or use another hydra.run.dir"),
    errno.EFBIG: ("the file is too large for the file system or the process's file-size limit",
                  "raise the limit (ulimit -f unlimited) or use another hydra.run.dir"),
    errno.EACCES: ("permission denied", "make {folder} writable (chmod u+w {folder}) or use another hydra.run.dir"),
    errno.EPERM: ("operation not permitted", "make {folder} writable (chmod u+w {folder}; lsattr for an "
                                             "immutable flag) or use another hydra.run.dir"),
    errno.EROFS: ("the file system is read-only", "use another hydra.run.dir on a writable file system"),
}


def cannot_write(path: str | Path, error: OSError) -> WriteError | OSError:
    """The WriteError of a refused write of `path` (the target, not a temporary name), else `error` itself."""
    if error.errno not in WRITE_CAUSES:
        return error
    cause, fix = WRITE_CAUSES[error.errno]
    folder = Path(path).parent
    return WriteError(f"cannot write {path}: {cause} ({errno.errorcode[error.errno]}): {fix.format(folder=folder)}")


def read_checkpoint(path: str | Path, key: str = "ckpt") -> dict:
    """The contents of a ganlab checkpoint, tensors on the CPU; `key` is the option that named the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}: no checkpoint at {path}: pass the path of a .ckpt file (e.g. "
                          f"outputs/<date>/<time>/checkpoints/last.ckpt)")
    try:
        with open(path, "rb") as f:
            zip_start = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive ...
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path}: {e.strerror or e}") from None
    try:
        with warnings.catch_warnings():  # torch's note on a foreign pickle's protocol; the error below says more
            warnings.filterwarnings("ignore", "Detected pickle protocol")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        code = re.search(r"GLOBAL (\S+)", str(e))  # the function or class the pickle would call
        if code is None:  # torch's unpickler met bytes that are no pickle at all
            raise ConfigError(f"{key}: {path} is not a torch checkpoint (corrupt, or another format)") from None
        raise ConfigError(f"{key}: {path} holds more than tensors and plain values: unpickling it would call "
                          f"{code.group(1)}, and ganlab refuses to run code from a checkpoint. torch.load(..., "
                          f"weights_only=False) would run whatever the file's author put there, with your "
                          f"rights: do that only for a file you trust, and never from ganlab") from None
    except Exception:  # OSError, RuntimeError, EOFError, KeyError, ... depending on the damage
        size = path.stat().st_size
        what = ("empty (0 bytes)" if size == 0
                else f"truncated ({size} bytes; an interrupted copy or a full disk?)"  # ... its directory at the end
                if zip_start and not zipfile.is_zipfile(path)
                else "not a torch checkpoint (corrupt, or another format)")
        raise ConfigError(f"{key}: {path} is {what}") from None
    missing = [k for k in GANLAB_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ConfigError(f"{key}: {path} is a torch file but not a ganlab checkpoint (no {', '.join(missing)}): "
                          f"pass a checkpoints/*.ckpt written by ganlab's train.py")
    return ckpt


def write_atomically(path: str | Path, write: Callable[[Path], None], keep_old: bool = False) -> Path:
    """`write(tmp)` writes a file beside `path` under a name no other writer uses (sweep jobs may write the
    same cache file at once); it is flushed to disk and renamed over `path`, and the folder flushed, so readers
    see the old file or a whole new one, never a part, and the last writer's file stays. If anything fails,
    the temporary file is removed. Its name is random rather than mkstemp's, whose 0600 file would keep
    shared caches and checkpoints from their group.

    keep_old: a file already at `path` is another run's result and stays; the new one takes the first free name
    of `a.json`, `a.1.json`, `a.2.json`, ... (a hard link, which fails rather than replace a file that appeared
    meanwhile). Returns the path written. A write the system refuses is a WriteError naming `path`."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if keep_old:
            path = link_unused(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise cannot_write(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a crash only once the folder is on disk
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:  # some file systems refuse to fsync a folder; the file is in place either way
        pass
    return path


def temporary_name(path: Path) -> Path:
    """`.<name>.<pid>-<8 hex>.tmp` beside `path`: run_folder.remove_leftovers knows it by this form and its pid."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def link_unused(source: Path, path: Path) -> Path:
    """A hard link to `source` under the first free name of `a.json`, `a.1.json`, ... (never replacing a file)."""
    for n in range(10_000):
        candidate = path if n == 0 else path.with_name(f"{path.stem}.{n}{path.suffix}")
        try:
            os.link(source, candidate)
            return candidate
        except FileExistsError:
            continue
    raise ConfigError(f"{path}: 10,000 files of that name are there already; pass another out=")


def save_torch(obj, path: Path) -> None:
    """torch.save into `path`, streamed. torch turns a failed write of the file into a RuntimeError that names no
    file; the OSError under it (disk full, file-size limit) comes back out, for write_atomically to name."""
    with open(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files written by write_atomically, beside the target (loading stays Lightning's).
    Lightning's own writer stages the whole checkpoint in $TMPDIR (fsspec's transaction), leaves it there when
    killed, moves it across file systems by copying, and drops a PermissionError it meets there."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        write_atomically(path, lambda tmp: save_torch(checkpoint, tmp))
