"""The metrics a data set gets, with the networks they need loaded up front (a missing file fails before
training starts). Used by the training callback (metrics/callback.py) and by evaluate.py.

- toy data (N, D): `w1`, the exact earth mover's distance between `toy_n` samples and as many real ones
  (POT, metrics/w1.py); on mixtures also `modes` and `hq` (VEEGAN / PacGAN protocol, metrics/modes.py).
- images: `fid` and `kid` on `n` samples against the cached features of `n` real training images, on the
  `features` network (`inception`, `classifier`, or `auto`: Inception on a GPU, the domain classifier on a
  CPU; Inception's preprocessing is `protocol`, tf1 or clean, metrics/features.py); `is` when an Inception Score weights file is given; on labelled data, when the domain classifier
  exists, `classes` covered and `class_kl` (metrics/classes.py; on stacked data the classes are the 1,000
  triples). `features_name` says which network produced fid / kid: numbers of different networks never compare.
  For a class-conditional generator (its labels given): `class_acc`, the fraction of samples the domain
  classifier puts in the class they were asked for (AC-GAN's classification accuracy, Odena et al. 2017;
  metrics/class_acc.py).
  On the same features as fid / kid and the same cached real features: `precision`, `recall` (k = 3) and
  `density`, `coverage` (k = 5), image-level fidelity and mode coverage (metrics/prdc.py); the real set's k-NN
  radii are computed once per Suite.

Each family of these declares itself in its own file (metrics/registry.py): its names, which way each is
better, the data it is computed on (registry.Data) and its computation, which gets an `Evaluation` (the samples
and what the families share, computed once). A Suite computes the families of the kinds its data set is.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..images import to_uint8
from . import registry
from .classifier import ClassifierFeatures, classifier_path
from .features import PROTOCOLS, InceptionFeatures
from .fid import RealFeatures, embed
from .inception_score import InceptionScorer
from .prdc import MIN_POINTS
from .registry import Data

FEATURES = ("auto", "inception", "classifier")


def check_options(features: str = "auto", n: int = 10_000, toy_n: int = 2500, protocol: str = "tf1", **_) -> None:
    if features not in FEATURES:
        raise ValueError(f"metrics.features must be one of {', '.join(FEATURES)}, got {features!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"metrics.protocol must be one of {', '.join(PROTOCOLS)} (the Inception network's "
                         f"preprocessing), got {protocol!r}")
    if n < 2 or toy_n < 2:
        raise ValueError(f"metrics.n and metrics.toy_n must be >= 2, got {n} and {toy_n}")


class Suite:
    def __init__(self, datamodule, device: torch.device | str = "cpu", n: int = 10_000, features: str = "auto",
                 inception_weights: str | None = None, protocol: str = "tf1", classifier: str | None = None,
                 is_weights: str | None = None, kid_subset: int = 1000, toy_n: int = 2500, k: float = 3.0,
                 min_count: int = 1):
        check_options(features, n, toy_n, protocol)
        self.dm, self.device = datamodule, torch.device(device)
        self.k, self.min_count, self.kid_subset = float(k), int(min_count), int(kid_subset)
        self.toy = len(datamodule.shape) == 1
        self.n = int(toy_n if self.toy else n)
        self.features = self.classifier = self.scorer = None
        self.features_name = self.protocol = None  # the network behind fid / kid, and its preprocessing
        self.kept: dict[str, Any] = {}  # what a family keeps from one evaluation to the next (Evaluation.keep)
        if self.toy:
            self.data = {Data.TOY} | ({Data.MIXTURE} if getattr(datamodule, "modes", None) is not None else set())
            self.families = registry.families(self.data)  # the metrics of every kind of data this set is
            return
        auto = features == "auto"
        if auto:
            features = "inception" if self.device.type == "cuda" else "classifier"
        clf = Path(classifier).expanduser() if classifier else classifier_path(datamodule.root)
        if auto and features == "classifier" and not clf.is_file():
            raise FileNotFoundError(
                f"no domain classifier for this data set at {clf}, which metrics.features=auto uses on a CPU. "
                f"Train it (`python train_classifier.py data=<this data set>`, labelled on-device sets), or set "
                f"metrics.features=inception (the standard network; ~16 images/s on 2 CPU cores), or metrics=none")
        if features == "classifier" or (datamodule.num_classes is not None and clf.is_file()):
            self.classifier = ClassifierFeatures(clf).to(self.device)
        self.features = InceptionFeatures(inception_weights, protocol).to(self.device) if features == "inception" \
            else self.classifier
        self.features_name = self.features.name
        self.protocol = protocol if features == "inception" else None
        self.scorer = InceptionScorer(is_weights) if is_weights else None
        labelled = self.classifier is not None and datamodule.num_classes is not None
        self.data = {Data.IMAGES} | ({Data.LABELLED} if labelled else set())
        self.families = registry.families(self.data)
        available = datamodule.real_count()
        if available is not None and self.n > available:
            raise ValueError(f"metrics.n={self.n} is more than the {available} real images this data set has "
                             f"({type(datamodule).__name__}, {getattr(datamodule, 'split', 'its')} split): FID would "
                             f"compare {self.n} samples with {available} real images; set metrics.n <= {available}")
        if self.n < MIN_POINTS:
            raise ValueError(f"metrics.n={self.n} is too few for image data: density / coverage take each image's "
                             f"{MIN_POINTS - 1}th nearest neighbour; set metrics.n >= {MIN_POINTS}")
        self.real_features = RealFeatures(self.features)
        self._real = None  # (n, F) float64, loaded or computed on first use

    @torch.no_grad()
    def __call__(self, samples: Tensor, labels: Tensor | None = None) -> dict[str, float]:
        """samples: (n, D) toy points or (n, C, H, W) images in [-1, 1], and the classes (n,) a conditional
        generator was asked for -> {metric: value}, the families' in their order."""
        evaluation, out = Evaluation(self, samples, labels), {}
        for family in self.families:
            values = family.compute(evaluation)
            undeclared = set(values) - set(family.higher)
            if undeclared:  # a name nothing else knows: the report could not rank it, a sweep not check it
                raise ValueError(f"{family.source} computed {', '.join(sorted(undeclared))}, which it does not "
                                 f"register (metrics/registry.py)")
            out.update(values)
        return out

    def real(self) -> Tensor:
        """Features (n, F) float64 of the data's real(n) images: cached on disk under the name the data gives
        them (stats_key) and the feature network's, embedded on the first miss."""
        if self._real is None:
            self._real = self.real_features.get(self.dm.stats_key(self.n),
                                                lambda: to_uint8(self.dm.real(self.n)).to(self.device))
        return self._real


class Evaluation:
    """One evaluation's inputs, as the families' computations get them, and what several of them use, computed
    on first use and shared: the embedded samples (fid / kid and prdc), the classifier's predictions (classes and
    class_acc)."""

    def __init__(self, suite: Suite, samples: Tensor, labels: Tensor | None):
        self.suite, self.samples, self.labels = suite, samples, labels  # labels (n,) or None

    @cached_property
    def points(self) -> Tensor:
        return self.samples.float().cpu()  # (n, D) toy points

    @cached_property
    def images(self) -> Tensor:
        return to_uint8(self.samples).to(self.suite.device)  # (n, C, H, W) uint8

    @cached_property
    def fake(self) -> Tensor:
        return embed(self.suite.features, self.images)  # (n, F) float64, on the CPU

    def real(self) -> Tensor:
        return self.suite.real()  # (n, F) float64, on the CPU

    @cached_property
    def predicted(self) -> Tensor:
        return self.suite.classifier.predict(self.images)  # (n,) the domain classifier's classes

    def keep(self, key: str, make: Callable[[], Any]) -> Any:
        """make(), computed on the first evaluation of this Suite and kept for the next ones (what depends only
        on the real set, e.g. its k-NN radii); `key` is the family's own."""
        if key not in self.suite.kept:
            self.suite.kept[key] = make()
        return self.suite.kept[key]
