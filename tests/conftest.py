"""Shared fixtures: configs composed as `python train.py` would; small data sets in their real formats (idx,
CIFAR-10 batches, aligned CelebA, image folders)."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from . import launcher

ROOT = Path(__file__).resolve().parents[1]
# ganlab.train.CONF_DIR (tests/test_config.py checks), not imported from there: xdist's controller loads this file
# too, and importing Lightning there cost ~7 s before any worker started
CONF_DIR = str(ROOT / "conf")
FASHION_MNIST = OmegaConf.load(Path(CONF_DIR) / "data" / "fashion_mnist.yaml").root  # Debian's dataset-fashion-mnist

os.environ.setdefault("WANDB_MODE", "disabled")
XDIST = bool(os.environ.get("PYTEST_XDIST_WORKER"))  # make test: a worker per core (-n auto --dist loadfile)
if XDIST:  # one thread each, no oversubscription
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with more slow tests (trainings, subprocess runs) first, then files with more tests: make test's
    workers (--dist loadfile --no-loadscope-reorder) take whole files in this order, so the long ones start early
    and the quick ones fill in at the end, instead of one worker running a long file alone at the end while the
    other idles. xdist's own order (most tests first) puts a file of few long tests (test_learning_images.py: 2
    tests, ~1.5 minutes on an AVX2-only CPU) last, and one worker idles that long. A stable sort: a file's tests
    keep their order."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))  # 0 for a file without
    tests = Counter(item.path for item in items)
    items.sort(key=lambda item: (-slow[item.path], -tests[item.path]))


def train_py(*args: str, wandb: str = "disabled", cwd: Path = ROOT,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """`python train.py ARGS` run in `cwd` in its own process (one thread, W&B mode `wandb`), forked from a warm
    interpreter (tests/launcher.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": wandb}
    return launcher.run(ROOT / "train.py", *args, cwd=cwd, env=env, timeout=timeout)


def pip_install_or_skip(target: Path, *packages: str) -> None:
    """`pip install --target` of a reference implementation the test compares with; the test skips, saying why,
    when pip cannot get it (no package index reachable)."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--disable-pip-version-check", "--target", str(target), *packages],
                          capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot install the reference {' '.join(packages)} (no package index?): {why}")


@pytest.fixture(scope="session", autouse=True)
def metrics_cache(tmp_path_factory) -> Path:
    """Tests keep their classifiers and real statistics out of the user's cache. Two files come from it: the FID
    Inception network (make inception), linked, and Fashion-MNIST's domain classifier as `make classifier` trains
    it (make test trains it first, on every core, so that no test worker waits for another to train it), copied:
    a test that trains its own must not write into the user's cache."""
    import shutil

    from ganlab.metrics.classifier import classifier_path
    from ganlab.metrics.features import inception_path

    real, shipped = inception_path(), classifier_path(FASHION_MNIST)
    cache = tmp_path_factory.mktemp("cache")
    os.environ["GANLAB_CACHE"] = str(cache)
    if real.is_file():
        (cache / real.name).symlink_to(real)
    if shipped.is_file():
        shutil.copy(shipped, cache / shipped.name)
    return cache


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """Write an idx file (LeCun's MNIST format): magic (0, 0, 0x08, ndim), big-endian sizes, uint8 data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


@pytest.fixture(scope="session")
def idx_root(tmp_path_factory) -> Path:
    """A 256-image, 10-class Fashion-MNIST-shaped set: class c is a bright square whose size depends on c."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    labels = np.arange(256) % 10
    images = rng.integers(0, 40, size=(256, 28, 28))
    for i, c in enumerate(labels):
        images[i, 4:8 + 2 * c, 4:8 + 2 * c] = 220
    write_idx(root / "train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(root / "train-labels-idx1-ubyte.gz", labels, gz=True)
    write_idx(root / "t10k-images-idx3-ubyte", images[:64])
    write_idx(root / "t10k-labels-idx1-ubyte", labels[:64])
    return root


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """CIFAR-10's python batches (protocol-2 pickled dicts, as distributed), 20 images each: class c has a
    bright square in channel c % 3."""
    import pickle

    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in rng.integers(0, 10, 20)]
        images = rng.integers(0, 60, size=(20, 3, 32, 32), dtype=np.uint8)
        for i, c in enumerate(labels):
            images[i, c % 3, 8:24, 8:24] = 230
        batch = {"batch_label": name, "labels": labels, "data": images.reshape(20, 3072),
                 "filenames": [f"img_{i}.png" for i in range(20)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return root


PARTS = [0] * 24 + [1] * 8 + [2] * 8  # list_eval_partition of the 40 fixture images: 24 train, 8 valid, 8 test


def write_celeba(folder: Path) -> list[str]:
    """40 aligned-CelebA-like JPEGs (178x218): noise, white bands on the 20 rows above and below the centre
    178x178 square (the crop must remove them), a grey square whose brightness grows with the index."""
    rng = np.random.default_rng(0)
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, len(PARTS) + 1)]
    for i, name in enumerate(names):
        a = rng.integers(0, 60, size=(218, 178, 3), dtype=np.uint8)  # (H, W, C)
        a[:20], a[-20:] = 255, 255
        a[69:149, 49:129] = 100 + 3 * i
        Image.fromarray(a).save(folder / "img_align_celeba" / name, quality=95)
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, PARTS)))
    return names


@pytest.fixture(scope="session")
def celeba_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celeba")
    write_celeba(root)
    return root


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory) -> Path:
    """Two classes of different formats and sizes: cats/ red PNGs, dogs/ blue JPEGs (one nested deeper);
    beside them files that are not images, a hidden folder and an empty folder, which are not classes."""
    root = tmp_path_factory.mktemp("folder")
    sizes = [(40, 30), (50, 50), (30, 60), (64, 48), (33, 33), (80, 40)]  # (W, H)
    for cls, channel, ext in (("cats", 0, "png"), ("dogs", 2, "jpg")):
        for i, (w, h) in enumerate(sizes):
            a = np.full((h, w, 3), 30, np.uint8)
            a[..., channel] = 220
            path = root / cls / ("puppies" if i == 5 and cls == "dogs" else "") / f"{i}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(path)
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / ".thumbnails").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / ".thumbnails" / "x.png")
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="session")
def fixture_classifier(idx_root, metrics_cache):
    """The domain classifier of the idx fixture (class = size of a bright square), trained by
    train_classifier.py and saved where the metrics look for it (the tests' cache)."""
    from ganlab.metrics.classifier import classifier_path
    from ganlab.train_classifier import train_classifier

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("classifier", overrides=[f"data.root={idx_root}", "epochs=15", "batch_size=32"])
    result = train_classifier(cfg)
    return classifier_path(idx_root), result


@pytest.fixture(scope="session")
def fashion_classifier(metrics_cache, tmp_path_factory):
    """`python train_classifier.py data=fashion_mnist` as shipped (real Fashion-MNIST, ~91% test accuracy), in the
    tests' metrics cache where the metrics find it; returns its path (classifier_accuracy measures it). `make test`
    trained it before the tests (metrics_cache copies it in). Otherwise it is trained once per test session: under
    pytest-xdist by the first worker that needs it, into a folder the workers share (behind a file lock), and the
    others copy it from there (it takes ~2 minutes on one thread)."""
    import fcntl
    import shutil

    import torch

    from ganlab.metrics.classifier import classifier_path
    from ganlab.train_classifier import train_classifier

    cfg = fashion_classifier_cfg()
    mine = classifier_path(cfg.data.root)
    if mine.is_file():
        return mine
    if not XDIST:
        train_classifier(cfg)
        return mine
    shared = tmp_path_factory.getbasetemp().parent / "fashion_classifier"  # the session's folder, above gw0, gw1
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (shared / mine.name).is_file():
            shutil.copy(shared / mine.name, mine)
            return mine
        torch.set_num_threads(2)  # the other worker is likely waiting for it
        try:
            train_classifier(cfg)
        finally:
            torch.set_num_threads(1)
        shutil.copy(mine, shared / mine.name)
        return mine


def fashion_classifier_cfg() -> DictConfig:
    """The config `python train_classifier.py data=fashion_mnist` composes."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("classifier", overrides=["data=fashion_mnist"])


def classifier_accuracy(path: Path) -> float:
    """The test accuracy of Fashion-MNIST's classifier saved at `path`, as train_classifier reports it."""
    from ganlab.config import build
    from ganlab.images import to_uint8
    from ganlab.metrics.classifier import Classifier
    from ganlab.train_classifier import accuracy

    test = build(fashion_classifier_cfg().data, "data", split="t10k")  # IdxImages.TEST_SPLIT
    test.setup()
    return accuracy(Classifier.load(path), to_uint8(test.x), test.y)


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """A machine without W&B credentials, WANDB_MODE unset (so ganlab picks the mode), W&B's files in tmp_path."""
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))  # the run itself goes to <out_dir>/wandb (logger.wandb.save_dir)
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    yield
    import wandb

    assert wandb.run is None  # every run is finished: the next one in this process starts fresh


# For the learned-behaviour tests that score samples with metrics=default but assert on FID or class accuracy: KID's
# 100 subsets of the default 1,000 cost ~1.6 s of matrix products an evaluation on one core (256-d classifier
# features), ~30 s over the suite; KID itself is pinned in test_metrics.py
CHEAP_KID = "metrics.kid_subset=100"


def make_cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    """The config `python train.py OVERRIDES` composes, writing into tmp_path, quiet and logging every step;
    without sample-quality metrics unless an override names them (they are tested on their own)."""
    base = [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]
    if not any(o.startswith(("metrics", "experiment")) for o in overrides):
        base.append("metrics=none")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=base + list(overrides))


def read_metrics(out_dir: Path) -> list[dict[str, float]]:
    """Rows of the CSV logger's metrics.csv, empty cells and the training clock (time/seconds, which differs
    between two runs that compute the same; tests/test_clock.py reads it) dropped."""
    import csv

    with open(Path(out_dir) / "csv" / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != "" and not k.startswith("time/")}
                for row in csv.DictReader(f)]


def configured(group: str) -> dict[str, type]:
    """Every option of a config group (conf/<group>/*.yaml) -> the class it builds: new parts are found, not listed."""
    from hydra.utils import get_class

    conf = Path(CONF_DIR) / group
    nodes = {p.stem: OmegaConf.load(p) for p in sorted(conf.glob("*.yaml"))}
    return {name: get_class(node["_target_"] if "_target_" in node else next(iter(node.values()))["_target_"])
            for name, node in nodes.items() if node and ("_target_" in node or len(node) == 1)}
