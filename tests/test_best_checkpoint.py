"""callbacks.checkpoint.best keeps checkpoints/best.ckpt: the weights of the evaluation where the metric was best
so far, in its direction (val/w1 lower, val/hq higher), the same after a resume; names the key when it cannot."""
import pytest
import torch

from ganlab.config import ConfigError
from ganlab.train import train

from .conftest import make_cfg, read_metrics

# toy runs with an evaluation every 2 iterations and a kept checkpoint at each: best.ckpt must equal one of them.
# At this learning rate the metrics swing (here: val/w1 best at 6, val/hq at 8 of 2..10), so neither the first
# nor the last evaluation is the best one.
TOY = ["data=grid25", "net.g.hidden=16", "net.d.hidden=16", "data.batch_size=64", "iterations=10", "metrics.every=2",
       "metrics.toy_n=300", "callbacks.checkpoint.every=2", "callbacks.checkpoint.keep=true", "optim.g.lr=0.05",
       "optim.d.lr=0.05", "model.n_critic=1"]


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def record(path) -> dict:
    """The Checkpointer's state in a checkpoint: the best value so far and its iteration."""
    callbacks = torch.load(path, weights_only=True)["callbacks"]
    return next(v for k, v in callbacks.items() if k.startswith("Checkpointer"))


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("metric, pick", [("val/w1", min), ("val/hq", max)])
def test_best_ckpt_holds_the_weights_of_the_best_evaluation(tmp_path, metric, pick):
    out = tmp_path / "run"
    train(make_cfg(out, *TOY, f"callbacks.checkpoint.best={metric}"))
    values = {int(r["step"]): r[metric] for r in read_metrics(out) if metric in r}
    assert sorted(values) == list(range(2, 11, 2))
    assert len(set(values.values())) > 1  # the record moved: a best.ckpt of the first or last would not pass
    best = pick(values, key=lambda s: (values[s], -s if pick is max else s))  # the first of equal values
    saved = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert saved["global_step"] == torch.load(out / "checkpoints" / f"iter_{best:07d}.ckpt",
                                              weights_only=True)["global_step"]
    assert same(saved["state_dict"], weights(out / "checkpoints" / f"iter_{best:07d}.ckpt"))
    for s in values:  # and of no other evaluation
        if s != best and values[s] != values[best]:
            assert not same(saved["state_dict"], weights(out / "checkpoints" / f"iter_{s:07d}.ckpt"))
    assert record(out / "checkpoints" / "best.ckpt") == {"metric": metric, "value": pytest.approx(values[best]),
                                                         "iteration": best}


def test_an_evaluation_that_failed_is_no_evaluation(tmp_path, monkeypatch):
    """The evaluation at iteration 6 fails (a warning; training goes on): best.ckpt is decided among the others."""
    from ganlab.metrics.suite import Suite
    evaluate, calls = Suite.__call__, []

    def failing_at_6(self, *args, **kwargs):
        calls.append(None)
        if len(calls) == 3:  # evaluations at 2, 4, 6, ...
            raise RuntimeError("out of memory (injected)")
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Suite, "__call__", failing_at_6)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="the evaluation at iteration 6 failed"):
        train(make_cfg(out, *TOY, "callbacks.checkpoint.best=val/w1"))
    values = {int(r["step"]): r["val/w1"] for r in read_metrics(out) if "val/w1" in r}
    assert sorted(values) == [2, 4, 8, 10]
    best = min(values, key=lambda s: (values[s], s))
    assert record(out / "checkpoints" / "best.ckpt") == {"metric": "val/w1", "value": pytest.approx(values[best]),
                                                         "iteration": best}
    assert same(weights(out / "checkpoints" / "best.ckpt"), weights(out / "checkpoints" / f"iter_{best:07d}.ckpt"))


def test_a_resumed_run_keeps_comparing_against_the_saved_record(tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train(make_cfg(full, *TOY, "callbacks.checkpoint.best=val/w1"))
    train(make_cfg(resumed, *TOY, "callbacks.checkpoint.best=val/w1", f"ckpt_path={full}/checkpoints/iter_0000008.ckpt"))
    values = {int(r["step"]): r["val/w1"] for r in read_metrics(full) if "val/w1" in r}
    best = min(values, key=lambda s: (values[s], s))
    # the final record is the uninterrupted run's: a record lost on resume would end at a later iteration
    a, b = (record(run / "checkpoints" / "last.ckpt") for run in (full, resumed))
    assert a == b and b["iteration"] == best, (a, b, values)
    if best > 8:  # found again after the resume, with the same weights
        assert same(weights(full / "checkpoints" / "best.ckpt"), weights(resumed / "checkpoints" / "best.ckpt"))
    else:  # the record came with the checkpoint and nothing later beat it: no new best.ckpt was written
        assert not (resumed / "checkpoints" / "best.ckpt").exists()
    # resumed with another metric, the val/w1 record does not count: val/hq's record starts at the next evaluation
    other = tmp_path / "other"
    train(make_cfg(other, *TOY, "callbacks.checkpoint.best=val/hq", f"ckpt_path={full}/checkpoints/iter_0000008.ckpt"))
    assert record(other / "checkpoints" / "best.ckpt")["metric"] == "val/hq"
    assert record(other / "checkpoints" / "best.ckpt")["iteration"] == 10


@pytest.mark.parametrize("overrides, message", [
    (["callbacks.checkpoint.best=val/nope"], r"^callbacks\.checkpoint\.best must be null or one of the logged"),
    (["callbacks.checkpoint.best=val/fid"], r"^callbacks\.checkpoint\.best=val/fid: toy data never logs it"),
    (["callbacks.checkpoint.best=val/w1", "metrics=none"], r"^callbacks\.checkpoint\.best=val/w1: metrics=none"),
])
def test_a_best_metric_the_run_cannot_log_is_refused_before_training(tmp_path, overrides, message):
    out = tmp_path / "run"
    base = [o for o in TOY if "metrics=none" not in overrides or not o.startswith("metrics.")]  # none has no keys
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(out, *base, *overrides))
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
