"""Checkpoint files: written atomically, read defensively.

Writes: the file is written beside its target under a name of its own, flushed to disk, then renamed over it,
so a crash or a kill mid-write leaves the previous checkpoint intact, never a truncated one, and processes
writing the same file at once (sweep jobs filling the statistics cache) each leave a whole one.

Reads (`read_checkpoint`): torch.load(weights_only=True), which unpickles tensors and plain values only and
refuses any other object; every way a file can be wrong (missing, cut short, not a torch file, holding
code, not ganlab's) becomes one ConfigError naming the file and what is wrong with it.
"""
from __future__ import annotations

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
    meanwhile). Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if keep_old:
            path = _link_unused(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
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


def _link_unused(tmp: Path, path: Path) -> Path:
    for n in range(10_000):
        candidate = path if n == 0 else path.with_name(f"{path.stem}.{n}{path.suffix}")
        try:
            os.link(tmp, candidate)
            return candidate
        except FileExistsError:
            continue
    raise ConfigError(f"{path}: 10,000 files of that name are there already; pass another out=")


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        write_atomically(path, lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp,
                                                                                           storage_options))
