"""evaluate.py beyond a run's own metrics: FID between two image sets on disk (folders or .npy), a published
protocol (lucic2018) on a checkpoint, and the one-line errors for bad input."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.config import ConfigError
from ganlab.evaluate import compare_sets, evaluate, main
from ganlab.metrics import published
from ganlab.metrics.classifier import ClassifierFeatures
from ganlab.metrics.features import InceptionFeatures, inception_path
from ganlab.metrics.fid import embed, fid_kid
from ganlab.metrics.prdc import prdc
from ganlab.metrics.image_sets import load_image_set
from ganlab.sampling import generate, load_generator
from ganlab.train import train

from .conftest import make_cfg


def fixture_images(idx_root, n=48) -> np.ndarray:
    from ganlab.data.idx import read_idx

    return read_idx(idx_root / "train-images-idx3-ubyte.gz")[:n].copy()  # (n, 28, 28) uint8


def test_a_folder_of_pngs_reads_as_the_same_array(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (3, 20, 20), dtype=np.uint8)
    for i, im in enumerate(grey):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    assert torch.equal(load_image_set(tmp_path), torch.from_numpy(grey)[:, None])  # (3, 1, 20, 20)
    np.save(tmp_path / "grey.npy", grey)
    assert torch.equal(load_image_set(tmp_path / "grey.npy"), torch.from_numpy(grey)[:, None])
    colour = tmp_path / "colour"
    colour.mkdir()
    rgb = rng.integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    for i, im in enumerate(rgb):
        Image.fromarray(im).save(colour / f"{i}.png")
    Image.fromarray((grey[0].astype(np.uint16) * 257)).save(colour / "sixteen_bit_grey.png")  # 16-bit, mixed in
    x = load_image_set(colour)  # (3, 3, 20, 20): colour files, and the grey one tiled
    assert x.shape == (3, 3, 20, 20) and torch.equal(x[:2], torch.from_numpy(rgb).permute(0, 3, 1, 2))
    assert torch.equal(x[2], torch.from_numpy(grey[0])[None].expand(3, -1, -1))  # 16 bits back to the 8 they were


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 8, 8), np.float32), r"fake: .* holds float32 values in \[0, 0\]; FID reads uint8 .*np.round"),
    (np.full((4, 8, 8), 300, np.int64), r"fake: .* values in \[300, 300\], outside \[0, 255\]"),
    (np.zeros((4, 8, 8, 3), np.uint8), r"fake: .* has shape \(4, 8, 8, 3\).*np.moveaxis"),
    (np.zeros((0, 8, 8), np.uint8), r"fake: .* has shape \(0, 8, 8\)"),
])
def test_bad_arrays_are_one_line_naming_the_set(tmp_path, idx_root, capsys, array, message):
    np.save(tmp_path / "real.npy", fixture_images(idx_root, 4))
    np.save(tmp_path / "fake.npy", array)
    with pytest.raises(SystemExit) as e:
        main([f"real={tmp_path / 'real.npy'}", f"fake={tmp_path / 'fake.npy'}"])
    assert str(e.value).startswith("ganlab: ") and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=message):
        compare_sets(tmp_path / "real.npy", tmp_path / "fake.npy")


def test_other_bad_input_before_any_work(tmp_path, idx_root):
    np.save(tmp_path / "a.npy", fixture_images(idx_root, 4))
    a = tmp_path / "a.npy"
    (tmp_path / "odd").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "odd" / "0.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "odd" / "1.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "wrong.pt").write_bytes(b"not the network")
    cases = [
        (dict(fake=tmp_path / "odd"), r"fake: the images of .*odd differ in size .*1.png"),
        (dict(fake=tmp_path / "empty"), r"fake: .*empty holds no image files"),
        (dict(fake=tmp_path / "nope.npy"), r"fake: .*nope.npy is neither a folder of images nor a .npy file"),
        (dict(protocol="tf2"), r"protocol must be one of tf1, clean .*got 'tf2'"),
        (dict(protocol="lucic2018"), r"published protocol fixes the real set: use it with ckpt="),
        (dict(features="vgg"), r"features must be inception or classifier"),
        (dict(features="classifier"), r"features=classifier needs classifier=PATH"),
        (dict(kid_subset=1), r"kid_subset must be a whole number >= 2"),
        (dict(inception_weights=str(tmp_path / "wrong.pt")), r"not the standard FID Inception network .*sha1"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message):
            compare_sets(**{"real": a, "fake": a, **options})
    with pytest.raises(SystemExit, match="(?s)missing: fake\nusage: evaluate.py"):
        main([f"real={a}"])
    with pytest.raises(SystemExit, match="(?s)unknown: n\nusage: evaluate.py"):
        main([f"real={a}", f"fake={a}", "n=3"])
    with pytest.raises(SystemExit, match="seed must be a whole number, got 'abc'"):
        main(["ckpt=x.ckpt", "seed=abc"])
    with pytest.raises(SystemExit, match="ema must be true or false, got 'maybe'"):  # was taken as true
        main(["ckpt=x.ckpt", "ema=maybe"])
    with pytest.raises(SystemExit, match="kid_subset must be >= 2, got 1"):
        main([f"real={a}", f"fake={a}", "kid_subset=1"])


def test_two_sets_on_the_domain_classifier_print_one_json_line(tmp_path, idx_root, fixture_classifier, capsys):
    x = fixture_images(idx_root)
    np.save(tmp_path / "real.npy", x)
    np.save(tmp_path / "fake.npy", 255 - x)
    main([f"real={tmp_path / 'real.npy'}", f"fake={tmp_path / 'fake.npy'}", "features=classifier",
          f"classifier={fixture_classifier[0]}", "kid_subset=16", f"out={tmp_path / 'out.json'}"])
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    result = json.loads(line)
    assert result == json.loads((tmp_path / "out.json").read_text())
    net = ClassifierFeatures(fixture_classifier[0])
    want = fid_kid(embed(net, torch.from_numpy(x)[:, None]), embed(net, torch.from_numpy(255 - x)[:, None]), 16)
    assert result["fid"] == pytest.approx(want["fid"], rel=1e-9) and result["fid"] > 1.0
    assert result["kid"] == pytest.approx(want["kid"], rel=1e-9)
    want = prdc(embed(net, torch.from_numpy(x)[:, None]), embed(net, torch.from_numpy(255 - x)[:, None]))
    assert {k: result[k] for k in want} == pytest.approx(want, rel=1e-12)
    assert result["n_real"] == result["n_fake"] == 48 and result["features"] == net.name
    assert result["protocol"] is None  # a protocol is the Inception network's preprocessing
    same = compare_sets(tmp_path / "real.npy", tmp_path / "real.npy", "classifier",
                        classifier=fixture_classifier[0], kid_subset=16)
    assert same["fid"] == pytest.approx(0.0, abs=5e-3)  # 48 samples of 256-d features: sqrtm of a singular matrix
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0  # every point is in its own ball
    np.save(tmp_path / "few.npy", x[:5])  # k = 5 neighbours need 6 images: null, FID and KID still computed
    few = compare_sets(tmp_path / "real.npy", tmp_path / "few.npy", "classifier", classifier=fixture_classifier[0],
                       kid_subset=4)
    assert few["fid"] > 0 and [few[k] for k in ("precision", "recall", "density", "coverage")] == [None] * 4


@pytest.mark.slow
@pytest.mark.skipif(not inception_path().is_file(), reason="make inception")
def test_lucic2018_on_a_checkpoint(tmp_path, idx_root, monkeypatch):
    """The protocol's real set is the data set's t10k split at 28x28 straight from the files; the generator's
    32x32 samples are resized to 28x28; the TF1 Inception protocol; the number is labelled with it. The
    fixture's t10k split holds 64 images, so this test shrinks N from the protocol's 10,000 to 16."""
    train(make_cfg(tmp_path, f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16",
                   "iterations=1"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"protocol=lucic2018: .*needs 10000 28x28 images in the t10k split .*found 64"):
        evaluate(ckpt, protocol="lucic2018", device="cpu")
    small = dataclasses.replace(published.PUBLISHED["lucic2018"], n=16)
    monkeypatch.setitem(published.PUBLISHED, "lucic2018", small)
    main([f"ckpt={ckpt}", "protocol=lucic2018"])
    result = json.loads((tmp_path / "checkpoints" / "last.ckpt.lucic2018.json").read_text())
    assert result["protocol"] == "lucic2018" and result["features"] == "inception-tf1" and result["n"] == 16
    assert result["metrics"]["fid"] > 0 and result["iteration"] == 1
    with pytest.raises(ConfigError, match="only data.root and metrics.inception_weights may be set"):
        evaluate(ckpt, ["metrics.n=5"], protocol="lucic2018")
    # n=N ranks at a smaller N: N samples against the first N real images, on the protocol's network and
    # preprocessing, labelled as not the protocol's number
    main([f"ckpt={ckpt}", "protocol=lucic2018", "n=8"])
    ranked = json.loads((tmp_path / "checkpoints" / "last.ckpt.lucic2018-n8.json").read_text())
    assert ranked["n"] == 8 and ranked["n_protocol"] == 16 and ranked["protocol"] == "lucic2018"
    from ganlab.data.idx import read_idx

    net = InceptionFeatures(None, "tf1")
    real = embed(net, torch.from_numpy(read_idx(idx_root / "t10k-images-idx3-ubyte")[:8].copy())[:, None])
    g, _ = load_generator(ckpt)
    fake = embed(net, small.fake(generate(g, 8, 0, device=torch.device("cpu"))))  # (8, 1, 28, 28) uint8
    expected = {**fid_kid(real, fake), **prdc(real, fake)}
    assert ranked["metrics"] == pytest.approx({k: float(v) for k, v in expected.items()}, rel=1e-4, abs=1e-6)
    for bad, error in [("n=5", r"n=5: protocol=lucic2018 ranks at 6 <= n < 16"), ("n=16", "n=16: .*leave n out"),
                       ("n=two", "n must be a whole number")]:
        with pytest.raises(SystemExit, match=error):
            main([f"ckpt={ckpt}", "protocol=lucic2018", bad])
    with pytest.raises(SystemExit, match="n=8 goes with a published protocol .*metrics.n=8"):
        main([f"ckpt={ckpt}", "n=8"])


def test_lucic2018_refuses_data_it_does_not_define(tmp_path):
    train(make_cfg(tmp_path, "data=ring8", "net.g.hidden=8", "net.d.hidden=8", "iterations=1"))
    with pytest.raises(ConfigError, match=r"protocol=lucic2018 .* is defined for IdxImages data .*trained on \w+"):
        evaluate(tmp_path / "checkpoints" / "last.ckpt", protocol="lucic2018")
