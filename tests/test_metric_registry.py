"""The metric registry (metrics/registry.py): every name a Suite logs is registered with its data and the
direction a hand check gives it, and a new metric is one file: a family in a module of its own, found by the
registry, is computed and logged by the Suite and known to the callbacks, the sweep check and the report."""
from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import ganlab.metrics
from ganlab.callbacks.checkpoint import Checkpointer
from ganlab.config import ConfigError
from ganlab.data.idx import IdxImages
from ganlab.data.toy import Grid, SwissRoll
from ganlab.metrics import registry
from ganlab.metrics.callback import Metrics
from ganlab.metrics.registry import Data
from ganlab.metrics.suite import Suite
from ganlab.report.collect import Group, Run
from ganlab.report.markdown import _metrics_tables
from ganlab.report.stats import final_and_best, image_metrics, table_metrics, toy_metrics
from ganlab.sweep import check_objective
from ganlab.train import train

from .conftest import make_cfg, read_metrics

# By hand, from each metric's definition: a distance (fid, kid, w1) or a divergence from uniform classes
# (class_kl) is better lower; counts, fractions and scores of quality or coverage are better higher.
HIGHER = {"fid": False, "kid": False, "w1": False, "class_kl": False, "is": True, "modes": True, "hq": True,
          "classes": True, "class_acc": True, "precision": True, "recall": True, "density": True, "coverage": True}


def inception_score_weights(path: Path, monkeypatch) -> Path:
    """A weights file of torch-fidelity's Inception-v3 (its own random initial weights: none can be downloaded
    here), as in tests/test_metrics.py: it makes a Suite compute `is`."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with monkeypatch.context() as m:  # build the architecture without its download
        m.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        m.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {})
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"])
    torch.save(net.state_dict(), path)
    return path


def test_the_registry_holds_every_metric_with_its_hand_checked_direction():
    assert sorted(registry.logged()) == sorted(f"val/{m}" for m in HIGHER)
    for name, higher in HIGHER.items():
        assert registry.higher_is_better(f"val/{name}") is higher, name
    assert registry.find("val/fid").data is Data.IMAGES and registry.find("val/modes").data is Data.MIXTURE
    assert registry.find("val/w1").data is Data.TOY and registry.find("val/class_acc").data is Data.LABELLED
    assert registry.find("train/d_loss") is None and registry.find("val/accuracy") is None  # the model's own
    with pytest.raises(KeyError, match="'val/nope' is no registered"):
        registry.higher_is_better("val/nope")
    # the report's columns, in the order its tables have always had
    assert toy_metrics() == ["val/modes", "val/hq", "val/w1"]
    assert image_metrics() == ["val/fid", "val/kid", "val/is", "val/classes", "val/class_kl", "val/class_acc",
                               "val/precision", "val/recall", "val/density", "val/coverage"]


def test_every_name_a_suite_logs_is_registered(tmp_path, idx_root, fixture_classifier, monkeypatch):
    """Each kind of data with everything that adds metrics (modes; a domain classifier, labels asked for, an
    Inception Score weights file): together the Suites compute every registered name, and only those."""
    grid = Grid(batch_size=64)
    toy = Suite(grid, toy_n=300)
    assert toy.data == {Data.TOY, Data.MIXTURE}
    seen = set(toy(grid.sample(300, torch.Generator().manual_seed(0))))
    assert seen == {"w1", "modes", "hq"}
    roll = Suite(SwissRoll(batch_size=64), toy_n=300)
    assert roll.data == {Data.TOY} and set(roll(torch.randn(300, 2))) == {"w1"}  # no modes to count

    dm = IdxImages(root=str(idx_root), size=32, batch_size=16)
    dm.setup()
    images = Suite(dm, n=20, features="classifier", kid_subset=10,  # few: IS runs Inception on each
                   is_weights=str(inception_score_weights(tmp_path / "inception.pth", monkeypatch)))
    assert images.data == {Data.IMAGES, Data.LABELLED}
    values = images(dm.x[:20], torch.arange(20) % 10)
    assert set(values) == {m for m in HIGHER if m not in seen}
    assert set(images(dm.x[:20])) == set(values) - {"class_acc"}  # no classes asked for: no accuracy
    assert list(values) == [m.removeprefix("val/") for m in image_metrics()]  # computed in the registry's order
    assert seen | set(values) == set(HIGHER)
    for name in seen | set(values):  # logged as val/<name>: registered, in the direction checked by hand
        assert registry.higher_is_better(f"val/{name}") is HIGHER[name]


def test_a_family_must_register_every_name_it_computes(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))

    @registry.register(data=Data.TOY, higher={"declared": True}, order=99)
    def sloppy(ev):
        return {"declared": 1.0, "undeclared": 2.0}

    grid = Grid(batch_size=64)
    with pytest.raises(ValueError, match=r"sloppy computed undeclared, which it does not register"):
        Suite(grid, toy_n=300)(grid.sample(300, torch.Generator().manual_seed(0)))


def test_a_name_is_registered_once(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    with pytest.raises(ValueError, match=r"registers w1, which ganlab\.metrics\.w1\.suite_w1 registers already"):
        registry.register(data=Data.TOY, higher={"w1": True}, order=1)(lambda ev: {})
    with pytest.raises(TypeError, match="takes a metrics.registry.Data"):
        registry.register(data="toy", higher={"x": True}, order=1)
    with pytest.raises(ValueError, match="bare"):
        registry.register(data=Data.TOY, higher={"val/x": True}, order=1)


# The one file a new metric is: the spread of toy samples (their mean per-axis standard deviation), higher is
# better, placed after w1. Written as any metrics/<family>.py is.
SPREAD = '''
"""Spread of toy samples: the mean over axes of their standard deviation (a test's metric)."""
from __future__ import annotations

from .registry import Data, register


@register(data=Data.TOY, higher={"spread": True}, order=30)
def suite_spread(ev):
    return {"spread": float(ev.points.std(0).mean())}
'''


@pytest.fixture
def spread(tmp_path, monkeypatch):
    """metrics/spread.py, as if dropped into src/ganlab/metrics/: the package's path reaches a folder holding it
    (nothing else changes); the registry and the import system are as before after the test."""
    folder = tmp_path / "new_metric"
    folder.mkdir()
    (folder / "spread.py").write_text(textwrap.dedent(SPREAD))
    monkeypatch.setattr(ganlab.metrics, "__path__", [*ganlab.metrics.__path__, str(folder)])
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    yield
    sys.modules.pop("ganlab.metrics.spread", None)
    if hasattr(ganlab.metrics, "spread"):
        delattr(ganlab.metrics, "spread")


def test_a_new_metric_is_one_file(tmp_path, spread):
    assert "ganlab.metrics.spread" not in sys.modules
    assert registry.higher_is_better("val/spread") and registry.find("val/spread").data is Data.TOY
    grid = Grid(batch_size=64)
    x = grid.sample(300, torch.Generator().manual_seed(0))  # (300, 2)
    values = Suite(grid, toy_n=300)(x)
    assert list(values) == ["modes", "hq", "w1", "spread"]  # in the order it registered
    assert values["spread"] == pytest.approx(float(np.std(x.numpy(), axis=0, ddof=1).mean()))

    # the callbacks: an objective that fails the run when its evaluation fails, a metric best.ckpt can follow
    assert Metrics(objective="val/spread").objective == "val/spread"
    Checkpointer(str(tmp_path / "ckpt"), best="val/spread")
    # the sweep check: its data and its direction
    cfg = make_cfg(tmp_path, "data=grid25", "metrics=default", "optimized_metric=val/spread")
    check_objective(cfg, "maximize")
    with pytest.raises(ConfigError, match=r"^optimized_metric=val/spread is better higher, but "
                                          r"hydra.sweeper.direction=minimize"):
        check_objective(cfg, "minimize")
    with pytest.raises(ConfigError, match=r"^optimized_metric=val/spread is a toy-data metric, but data=IdxImages"):
        check_objective(make_cfg(tmp_path, "data=fashion_mnist", "metrics=default", "optimized_metric=val/spread"))

    # the report: a column after w1, its best value the highest, its arrow up
    steps = np.array([2, 4, 6])
    run = Run(Path("run"), [], "completed", series={"val/w1": (steps, np.array([0.5, 0.3, 0.4])),
                                                    "val/spread": (steps, np.array([1.0, 3.0, 2.0]))})
    groups = [Group("grid25", (), [run], "a")]
    assert table_metrics(groups) == ["val/w1", "val/spread"]
    assert final_and_best(run, "val/spread") == (2.0, 3.0) and final_and_best(run, "val/w1") == (0.4, 0.3)
    final, best = [line for line in _metrics_tables(groups) if line.startswith("| group")]
    assert final.endswith("| val/w1 ↓ | val/spread ↑ |") and best.endswith("| val/w1 ↓ | val/spread ↑ |")
    table = _metrics_tables(groups)
    rows = [line for line in table if line.startswith("| a |")]
    assert rows[0].endswith("| 0.4 | 2 |") and rows[1].endswith("| 0.3 | 3 |")  # final, then best: spread's highest


def test_a_new_metric_is_logged_by_a_training_run(tmp_path, spread):
    """The metrics callback logs it as val/spread in metrics.csv beside val/w1, at every evaluation."""
    train(make_cfg(tmp_path, "data=grid25", "net.g.hidden=16", "net.d.hidden=16", "data.batch_size=64",
                   "iterations=4", "metrics.every=2", "metrics.toy_n=300"))
    rows = [r for r in read_metrics(tmp_path) if "val/w1" in r]
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all("val/spread" in r and math.isfinite(r["val/spread"]) and r["val/spread"] > 0 for r in rows)
