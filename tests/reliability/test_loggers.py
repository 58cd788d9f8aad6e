"""Logging failures cost a warning, never the run: W&B that cannot start or fails mid-run, any logger that
raises (ganlab.loggers.Guarded). What a healthy run writes is tested in tests/test_loggers.py."""
import warnings

import numpy as np
import pytest

from ganlab.loggers import Guarded
from ganlab.train import train

from ..conftest import make_cfg, read_metrics
from ..test_loggers import TOY, logger_warnings


def test_wandb_that_cannot_start_costs_a_warning_not_the_run(tmp_path, monkeypatch, no_credentials):
    import wandb

    def fail(*args, **kwargs):
        raise wandb.errors.CommError("network unreachable")

    monkeypatch.setattr(wandb, "init", fail)
    with pytest.warns(UserWarning) as record:
        train(make_cfg(tmp_path, *TOY, "logger=[wandb,tensorboard]"))
    assert logger_warnings(record, "wandb") == [
        "wandb logger: start failed (CommError: network unreachable); training goes on without it"]
    assert max(r["step"] for r in read_metrics(tmp_path)) == 4  # the run finished, the other loggers logged
    assert list((tmp_path / "tensorboard").glob("events.*"))


def test_wandb_that_fails_later_costs_one_warning_not_the_run(tmp_path, monkeypatch, no_credentials):
    from wandb.sdk.wandb_run import Run

    def fail(self, *args, **kwargs):
        raise ConnectionError("connection reset")

    monkeypatch.setattr(Run, "log", fail)
    with pytest.warns(UserWarning) as record:
        train(make_cfg(tmp_path, *TOY, "logger=wandb"))
    assert logger_warnings(record, "wandb") == [
        "wandb logger: log_metrics failed (ConnectionError: connection reset); training goes on without it"]
    assert max(r["step"] for r in read_metrics(tmp_path)) == 4
    assert len(list((tmp_path / "samples").glob("iter_*.png"))) == 2


def test_guarded_logger_warns_once_then_drops_the_logger():
    class Broken:
        version, save_dir = 0, None

        def log_metrics(self, metrics, step):
            raise OSError("disk full")

        def finalize(self, status):
            raise OSError("still full")

    logger = Guarded("demo", Broken)
    with pytest.warns(UserWarning, match="demo logger: log_metrics failed"):
        logger.log_metrics({"a": 1.0}, step=1)
    assert logger.inner is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no exception
        logger.log_metrics({"a": 2.0}, step=2)
        logger.log_image("samples", [np.zeros((4, 4, 3), np.uint8)], step=2)
        logger.finalize("success")
