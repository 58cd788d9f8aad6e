"""evaluate.py: the configured metrics for a checkpoint, printed and written as JSON."""
import json

import pytest

from ganlab.data.idx import IdxImages
from ganlab.evaluate import evaluate, evaluate_floor, main
from ganlab.images import to_uint8
from ganlab.metrics.classifier import ClassifierFeatures, classifier_path
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


# cGAN: G and the class metrics are asked for fixed labels; dcgan_fast: G makes 28x28 images (net.g.native)
@pytest.mark.parametrize("preset", ["dcgan", "cgan", "dcgan_fast"])
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


def test_the_floor_scores_held_out_real_images_as_a_runs_samples(tmp_path, idx_root, fixture_classifier, capsys):
    """evaluate.py floor=DATA puts the held-out split's images through the Suite a run of DATA gets. The fixture's
    t10k images are its first 64 training images, which are also the Suite's real set (IdxImages.real): FID 0 and
    precision = recall = coverage = 1, and the classes those images are predicted as."""
    opts = [f"data.root={idx_root}", "metrics.n=64", "metrics.kid_subset=32", "metrics.features=classifier"]
    main(["floor=fashion_mnist", f"out={tmp_path / 'floor.json'}", *opts])
    result = json.loads((tmp_path / "floor.json").read_text())
    assert (result["floor"], result["held_out"], result["n"]) == ("fashion_mnist", "t10k", 64)
    assert result["features"].startswith("classifier-") and "val/recall\t1" in capsys.readouterr().out
    m = result["metrics"]
    assert m["fid"] == pytest.approx(0, abs=1e-2)  # rounding: 64 images, a singular covariance
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    images = IdxImages(str(idx_root), split="t10k").real(64)  # (64, 1, 32, 32) in [-1, 1]
    predicted = ClassifierFeatures(classifier_path(idx_root)).predict(to_uint8(images))  # (64,)
    assert m["classes"] == len(predicted.unique())
    # stacked: triples drawn from t10k with another seed than the real set's, so no longer the same images
    stacked = evaluate_floor("stacked", "t10k", opts)
    assert stacked["metrics"]["fid"] > 1 and 1 <= stacked["metrics"]["classes"] <= 1000


@pytest.mark.parametrize("args, error", [
    (["floor=ring8"], "floor=ring8: it has no held-out split (data.split)"),
    (["floor=nope"], "floor=nope: no such data set; one of celeba, cifar10, fashion_mnist"),
    (["floor=fashion_mnist", "held_out=train"], "held_out=train is the split the metrics' real set comes from"),
    (["floor=fashion_mnist", "held_out=test"], "held_out=test: data.split must be 'train' or 't10k'"),
    (["floor=fashion_mnist", "metrics.n=65"], "metrics.n=65 is more than the 64 images of the t10k split"),
    (["floor=fashion_mnist", "seed=3"], "unknown: seed"),
])
def test_floor_arguments_are_checked_before_anything_is_scored(idx_root, fixture_classifier, args, error):
    with pytest.raises(SystemExit) as e:
        main([*args, f"data.root={idx_root}", "metrics.features=classifier"])
    assert str(e.value).startswith("ganlab: ") and error in str(e.value) and "\n" not in str(e.value).split(
        "usage:")[0].rstrip("\n")
