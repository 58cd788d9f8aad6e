"""`data.download=true`: fetch a missing data set with torchvision.datasets, into the layout that class writes.

Datamodules call `fetch` from `prepare_data` (Lightning runs it on one process per node before `setup`, so
ranks never download into the same folder at once), only when asked and only when their files are missing.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def fetch(name: str, root: Path, **kwargs) -> None:
    """Download torchvision.datasets.<name> into root (constructing the class with download=True)."""
    import torchvision.datasets

    print(f"ganlab: data.download=true: fetching {name} into {root}", flush=True)
    try:
        getattr(torchvision.datasets, name)(root=str(root), download=True, **kwargs)
    except (OSError, RuntimeError) as e:  # no network, a changed mirror, a Google Drive quota, gdown missing
        raise RuntimeError(f"data.download=true: torchvision.datasets.{name} could not fetch the files into "
                           f"{root} ({e}). Download them by hand into data.root, or retry later") from e


def fetch_if_missing(present: Callable[[], object], name: str, root: Path, **kwargs) -> None:
    """`fetch` unless `present()` (the data set's own file check) finds the files; it raises FileNotFoundError
    when they are missing."""
    try:
        present()
    except FileNotFoundError:
        fetch(name, root, **kwargs)
