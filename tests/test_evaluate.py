"""evaluate.py: the configured metrics for a checkpoint, printed and written as JSON."""
import json

import pytest

from ganlab.evaluate import evaluate, main
from ganlab.train import train

from .conftest import make_cfg, read_metrics


def test_toy_checkpoint_gets_w1_and_mode_coverage(tmp_path, capsys):
    train(make_cfg(tmp_path, "data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=2",
                   "metrics=default", "metrics.toy_n=500"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    main([f"ckpt={ckpt}"])
    result = json.loads((tmp_path / "checkpoints" / "last.ckpt.metrics.json").read_text())
    assert result["iteration"] == 2 and result["n"] == 500 and result["features"] is None
    assert set(result["metrics"]) == {"w1", "modes", "hq"} and result["metrics"]["w1"] > 0
    assert "val/w1" in capsys.readouterr().out
    main([f"ckpt={ckpt}", "metrics.toy_n=200"])  # evaluated again: the first file stays, the second goes beside it
    again = json.loads((tmp_path / "checkpoints" / "last.ckpt.metrics.1.json").read_text())
    assert again["n"] == 200 and json.loads((tmp_path / "checkpoints" / "last.ckpt.metrics.json").read_text()) == result
    assert "last.ckpt.metrics.1.json" in capsys.readouterr().out


def test_image_checkpoint_gets_fid_kid_and_classes(tmp_path, idx_root, fixture_classifier):
    train(make_cfg(tmp_path, f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16",
                   "iterations=1"))  # trained without metrics: evaluate.py brings the default ones
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    result = evaluate(ckpt, ["metrics.n=64", "metrics.kid_subset=32"])
    assert result["features"].startswith("classifier-") and result["n"] == 64
    m = result["metrics"]
    assert set(m) == {"fid", "kid", "classes", "class_kl", "precision", "recall", "density", "coverage"}
    assert m["fid"] > 0 and 1 <= m["classes"] <= 10 and m["class_kl"] >= 0
    assert all(0 <= m[k] <= 1 for k in ("precision", "recall", "coverage")) and m["density"] >= 0


@pytest.mark.parametrize("preset", ["dcgan", "cgan"])  # cGAN: G and the class metrics are asked for fixed labels
def test_evaluate_reproduces_the_runs_own_last_metrics(tmp_path, idx_root, fixture_classifier, preset):
    """One sampler (sampling.py): evaluate.py on a run's last checkpoint, with the run's N, seed and features,
    gets the val/* the run logged at that iteration, from the EMA generator the metrics used."""
    train(make_cfg(tmp_path, f"data.root={idx_root}", f"model={preset}", "net.g.ch=8", "net.d.ch=8",
                   "data.batch_size=16", "iterations=3", "model.ema_decay=0.9", "metrics=default",
                   "metrics.features=classifier", "metrics.n=100", "metrics.kid_subset=32", "metrics.every=2"))
    logged = [r for r in read_metrics(tmp_path) if "val/fid" in r]
    assert [r["step"] for r in logged] == [2, 3]
    result = evaluate(tmp_path / "checkpoints" / "last.ckpt", device="cpu")
    assert result["iteration"] == 3 and result["n"] == 100 and result["features"].startswith("classifier-")
    conditional = {"class_acc"} if preset == "cgan" else set()
    assert set(result["metrics"]) == {"fid", "kid", "classes", "class_kl", "precision", "recall", "density",
                                      "coverage"} | conditional
    for k, v in result["metrics"].items():  # KID too: its subsets come from a seeded, forked RNG (metrics/fid.py)
        assert v == pytest.approx(logged[-1][f"val/{k}"], rel=1e-6, abs=1e-9), k
    assert result["metrics"]["fid"] != pytest.approx(logged[0]["val/fid"], rel=1e-6)  # the last G, not an earlier one


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="usage: evaluate.py ckpt=PATH"):
        main(["n=3"])
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main([f"ckpt={tmp_path}/none.ckpt"])
