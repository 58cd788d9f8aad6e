"""The metrics a data set gets, with the networks they need loaded up front (a missing file fails before
training starts). Used by the training callback (metrics/callback.py) and by evaluate.py.

- toy data (N, D): `w1`, the exact earth mover's distance between `toy_n` samples and as many real ones
  (POT); on mixtures also `modes` and `hq` (VEEGAN / PacGAN protocol, metrics/modes.py).
- images: `fid` and `kid` on `n` samples against the cached features of `n` real training images, on the
  `features` network (`inception`, `classifier`, or `auto`: Inception on a GPU, the domain classifier on a
  CPU; Inception's preprocessing is `protocol`, tf1 or clean, metrics/features.py); `is` when an Inception Score weights file is given; on labelled data, when the domain classifier
  exists, `classes` covered and `class_kl` (metrics/classes.py; on stacked data the classes are the 1,000
  triples). `features_name` says which network produced fid / kid: numbers of different networks never compare.
  For a class-conditional generator (its labels given): `class_acc`, the fraction of samples the domain
  classifier puts in the class they were asked for (AC-GAN's classification accuracy, Odena et al. 2017).
  On the same features as fid / kid and the same cached real features: `precision`, `recall` (k = 3) and
  `density`, `coverage` (k = 5), image-level fidelity and mode coverage (metrics/prdc.py); the real set's k-NN
  radii are computed once per Suite.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..images import to_uint8
from ..wasserstein import emd_samples
from .classes import class_coverage
from .classifier import ClassifierFeatures, classifier_path
from .features import PROTOCOLS, InceptionFeatures
from .fid import RealFeatures, embed, fid_kid
from .inception_score import InceptionScorer
from .modes import mode_coverage
from .prdc import MIN_POINTS, knn_radii, prdc

FEATURES = ("auto", "inception", "classifier")
# The metrics a Suite returns (logged as val/<name>), by the data that gets them; sweep.py checks a sweep's
# optimized_metric against them before training.
TOY_METRICS = ("w1",)  # any toy data
MIXTURE_METRICS = ("modes", "hq")  # toy mixtures (data with modes)
IMAGE_METRICS = ("fid", "kid", "is", "classes", "class_kl", "class_acc", "precision", "recall", "density",
                 "coverage")
#: Which way each is better (report.py ranks and labels by it).
HIGHER_IS_BETTER = {"w1": False, "modes": True, "hq": True, "fid": False, "kid": False, "is": True, "classes": True,
                    "class_kl": False, "class_acc": True, "precision": True, "recall": True, "density": True,
                    "coverage": True}


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
        if self.toy:
            return
        auto = features == "auto"
        if auto:
            features = "inception" if self.device.type == "cuda" else "classifier"
        clf = Path(classifier).expanduser() if classifier else classifier_path(datamodule.root)
        if auto and features == "classifier" and not clf.is_file():
            raise FileNotFoundError(
                f"no domain classifier for this data set at {clf}, which metrics.features=auto uses on a CPU. "
                f"Train it (`python train_classifier.py data=<this data set>`, labelled on-device sets), or set "
                f"metrics.features=inception (the standard network; ~6 images/s on 2 CPU cores), or metrics=none")
        if features == "classifier" or (datamodule.num_classes is not None and clf.is_file()):
            self.classifier = ClassifierFeatures(clf).to(self.device)
        self.features = InceptionFeatures(inception_weights, protocol).to(self.device) if features == "inception" \
            else self.classifier
        self.features_name = self.features.name
        self.protocol = protocol if features == "inception" else None
        self.scorer = InceptionScorer(is_weights) if is_weights else None
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
        self._radii = None  # {k: (n,)} the real features' k-NN radii (metrics/prdc.py), on first use

    @torch.no_grad()
    def __call__(self, samples: Tensor, labels: Tensor | None = None) -> dict[str, float]:
        """samples: (n, D) toy points or (n, C, H, W) images in [-1, 1], and the classes (n,) a conditional
        generator was asked for -> {metric: value}."""
        if self.toy:
            return self._toy(samples)
        images = to_uint8(samples).to(self.device)  # (n, C, H, W) uint8
        fake = embed(self.features, images)  # (n, F) float64
        out = fid_kid(self.real(), fake, self.kid_subset)
        real = self.real().to(self.device)
        if self._radii is None:
            self._radii = knn_radii(real)
        out.update(prdc(real, fake.to(self.device), self._radii))
        if self.scorer is not None:
            out["is"] = self.scorer(images)
        if self.classifier is not None and self.dm.num_classes is not None:
            predicted = self.classifier.predict(images)  # (n,)
            cov = class_coverage(predicted, self.dm.num_classes, self.min_count)
            out.update(classes=cov["covered"], class_kl=cov["kl"])
            if labels is not None:
                out["class_acc"] = (predicted.cpu() == labels.cpu()).float().mean().item()
        return out

    def real(self) -> Tensor:
        """Features (n, F) float64 of the data's real(n) images: cached on disk under the name the data gives
        them (stats_key) and the feature network's, embedded on the first miss."""
        if self._real is None:
            self._real = self.real_features.get(self.dm.stats_key(self.n),
                                                lambda: to_uint8(self.dm.real(self.n)).to(self.device))
        return self._real

    def _toy(self, samples: Tensor) -> dict[str, float]:
        fake = samples.float().cpu()  # (n, D)
        out = {"w1": emd_samples(fake.numpy(), self.dm.real(self.n).float().cpu().numpy())}
        if getattr(self.dm, "modes", None) is not None:
            out.update(mode_coverage(fake, self.dm.modes.cpu(), self.dm.std, self.k, self.min_count))
        return out
