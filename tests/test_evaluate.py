"""evaluate.py: the configured metrics for a checkpoint, printed and written as JSON."""
import json

import pytest

from ganlab.evaluate import evaluate, main
from ganlab.train import train

from .conftest import make_cfg


def test_toy_checkpoint_gets_w1_and_mode_coverage(tmp_path, capsys):
    train(make_cfg(tmp_path, "data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=2",
                   "metrics=default", "metrics.toy_n=500"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    main([f"ckpt={ckpt}"])
    result = json.loads((tmp_path / "checkpoints" / "last.ckpt.metrics.json").read_text())
    assert result["iteration"] == 2 and result["n"] == 500 and result["features"] is None
    assert set(result["metrics"]) == {"w1", "modes", "hq"} and result["metrics"]["w1"] > 0
    assert "val/w1" in capsys.readouterr().out


def test_image_checkpoint_gets_fid_kid_and_classes(tmp_path, idx_root, fixture_classifier):
    train(make_cfg(tmp_path, f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16",
                   "iterations=1"))  # trained without metrics: evaluate.py brings the default ones
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    result = evaluate(ckpt, ["metrics.n=64", "metrics.kid_subset=32"])
    assert result["features"].startswith("classifier-") and result["n"] == 64
    m = result["metrics"]
    assert set(m) == {"fid", "kid", "classes", "class_kl"}
    assert m["fid"] > 0 and 1 <= m["classes"] <= 10 and m["class_kl"] >= 0


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="usage: evaluate.py ckpt=PATH"):
        main(["n=3"])
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main([f"ckpt={tmp_path}/none.ckpt"])
