"""The metric registry. Each family of sample-quality metrics declares itself in its own file under metrics/ with
`@register(...)` on its computation: its names (logged as val/<name>), which way each is better, the data it is
computed on, and where its names go among the others. Everything that needs to know a metric reads it here:
Suite (which families a data set gets), metrics/callback.py and callbacks/checkpoint.py (the names a run can
log), sweep.py's check_objective (an optimized_metric's data and direction) and report/ (table columns, best
values, arrows).

Every module of this package is imported on the first look-up (`families`), so a new metric is one new file:
nothing else lists it.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .suite import Evaluation

PREFIX = "val/"  # Suite's values are logged as val/<name> (metrics/callback.py)


class Data(Enum):
    """The data a family is computed on: Suite gives a data set the families of every kind it is."""
    TOY = "toy"            # (N, D) points: every toy data set
    MIXTURE = "mixture"    # toy data with modes (the data module's `modes`: grid25, ring8)
    IMAGES = "images"      # (N, C, H, W) images: every image data set
    LABELLED = "labelled"  # images of a data set with classes, when its domain classifier exists

    @property
    def toy(self) -> bool:
        """Whether it is computed on toy points (else on images): no run gets metrics of both."""
        return self in (Data.TOY, Data.MIXTURE)


@dataclass(frozen=True, eq=False)
class Family:
    higher: dict[str, bool]  # name -> True when higher is better, in the order of the report's columns
    data: Data
    compute: Callable[[Evaluation], dict[str, float]]  # -> {name: value} for its names; fewer (or {}) when a
    # name does not apply to this evaluation (no labels given, no Inception Score weights)
    order: int  # its place among the families (report tables, Suite's output): lowest first

    @property
    def logged(self) -> tuple[str, ...]:
        return tuple(PREFIX + name for name in self.higher)

    @property
    def source(self) -> str:
        return f"{self.compute.__module__}.{self.compute.__qualname__}"


_FAMILIES: dict[str, Family] = {}  # Family.source -> family


def register(*, data: Data, higher: Mapping[str, bool], order: int):
    """Decorator: `compute(evaluation) -> {name: value}` is the family of metrics `higher` names (name -> whether
    higher is better), computed on `data`. Registering the same function again (a module reloaded) replaces it;
    a name another family has is an error."""
    if not isinstance(data, Data):
        raise TypeError(f"register(data=...) takes a metrics.registry.Data, got {data!r}")
    if not higher or any(not isinstance(v, bool) for v in higher.values()):
        raise ValueError(f"register(higher=...) maps each metric name to True (higher is better) or False, got "
                         f"{higher!r}")
    if any(not isinstance(n, str) or not n or "/" in n for n in higher):
        raise ValueError(f"metric names are bare (logged as {PREFIX}<name>), got {list(higher)}")

    def add(compute: Callable[[Evaluation], dict[str, float]]):
        family = Family(dict(higher), data, compute, int(order))
        for other in _FAMILIES.values():
            taken = set(other.higher) & set(family.higher)
            if taken and other.source != family.source:
                raise ValueError(f"{family.source} registers {', '.join(sorted(taken))}, which {other.source} "
                                 f"registers already")
        _FAMILIES[family.source] = family
        return compute

    return add


def discover() -> None:
    """Import every module of this package (the families register themselves when imported); cheap once they
    are imported."""
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")


def families(data: Iterable[Data] | None = None) -> list[Family]:
    """The registered families (of the kinds in `data`, all when None), in their order."""
    discover()
    kinds = None if data is None else set(data)
    return sorted((f for f in _FAMILIES.values() if kinds is None or f.data in kinds),
                  key=lambda f: (f.order, f.source))


def logged(data: Iterable[Data] | None = None) -> list[str]:
    """The logged names (val/<name>) of the families of `data` (all when None), in order."""
    return [name for f in families(data) for name in f.logged]


def find(name: str) -> Family | None:
    """The family that logs `name` (e.g. val/fid), else None (losses, a variant's own val/* metrics)."""
    bare = name.removeprefix(PREFIX) if isinstance(name, str) and name.startswith(PREFIX) else None
    return next((f for f in families() if bare in f.higher), None)


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the registered metric `name` (e.g. val/fid) is better."""
    family = find(name)
    if family is None:
        raise KeyError(f"{name!r} is no registered sample-quality metric ({', '.join(logged())})")
    return family.higher[name.removeprefix(PREFIX)]
