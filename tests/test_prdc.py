"""Precision / recall (Kynkaanniemi et al. 2019, k = 3) and density / coverage (Naeem et al. 2020, k = 5),
metrics/prdc.py:

- by hand, on 1-D point sets small enough to count every ball;
- against the `prdc` package (clovaai/generative-evaluation-prdc, Naeem et al.'s own code), installed into a
  temporary folder for this test only and run in its own process;
- on Fashion-MNIST through the platform's domain classifier: held-out real images score near 1, a "generator"
  collapsed to 3 classes keeps its precision and loses recall and coverage.
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

from ganlab.config import ConfigError
from ganlab.data.idx import IdxImages
from ganlab.images import to_uint8
from ganlab.metrics.fid import embed
from ganlab.metrics.prdc import knn_radii, prdc
from ganlab.metrics.registry import higher_is_better
from ganlab.metrics.suite import Suite
from ganlab.sweep import check_objective

from .conftest import make_cfg, pip_install_or_skip

FASHION = Path("/usr/share/datasets/fashion-mnist")
# prdc 0.2 (the package's last release) imports sklearn.metrics.pairwise_distances; scikit-learn's own
# dependencies numpy and scipy are ganlab's already
REFERENCE = ["prdc==0.2", "scikit-learn==1.6.1", "joblib==1.4.2", "threadpoolctl==3.5.0"]


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)[:, None]  # (N, 1) points on a line


def test_radii_are_the_kth_neighbour_without_the_point_itself():
    x = t([0, 1, 2, 3, 4, 5, 14])
    r = knn_radii(x)
    assert r[3].tolist() == [3, 2, 2, 2, 2, 3, 11]  # e.g. point 0: others at 1, 2, 3, ... -> the 3rd is 3
    assert r[5].tolist() == [5, 4, 3, 3, 4, 5, 13]
    with pytest.raises(ValueError, match="need more than 5 points"):
        knn_radii(x[:5])


def test_a_generator_holding_half_the_real_clusters_by_hand():
    """Real: two clusters of six points, 100 apart; fake: six points inside the first. Every fake lies in a
    real ball (precision 1); only the first cluster's reals lie in a fake ball (recall 1/2) or have a fake in
    their own ball (coverage 1/2); each fake sits in all six k=5 balls of its cluster: density 36 / (5 * 6)."""
    real = t([0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105])
    fake = t([0.5, 1.5, 2.0, 2.5, 3.5, 4.5])
    assert prdc(real, fake) == {"precision": 1.0, "recall": 0.5, "density": 1.2, "coverage": 0.5}
    # the roles swapped: half the "fakes" are far from every real ball, every real is in a fake ball
    swapped = prdc(fake, real)
    assert swapped["precision"] == 0.5 and swapped["recall"] == 1.0


def test_balls_are_closed_and_k_is_each_papers():
    """Real radii (k=3) [3, 2, 2, 2, 2, 3, 11], (k=5) [5, 4, 3, 3, 4, 5, 13]; fake radii (k=3) [3, 2, 2, 3, 3,
    2, 2, 3]. Precision: the four fakes near 0..5 (26..29 are more than 11 from 14) = 4/8. Recall: every real
    but 14 = 6/7. Density: the balls around 0..5 hold 0.5 six times (not 14's, 13.5 > 13) and 1.5, 2.5, 3.5
    all seven times; 14's ball (radius 13) holds 26 and, on its boundary, 27: (6 + 7 + 7 + 7 + 1 + 1) / (5 * 8).
    Coverage: 14's nearest fake is 3.5, 10.5 <= 13: every real = 1."""
    real = t([0, 1, 2, 3, 4, 5, 14])
    fake = t([0.5, 1.5, 2.5, 3.5, 26, 27, 28, 29])
    m = prdc(real, fake)
    assert m == {"precision": 0.5, "recall": 6 / 7, "density": pytest.approx(29 / 40, abs=1e-15), "coverage": 1.0}
    assert prdc(real, fake, chunk=2) == m  # row blocks of two give the same counts
    with pytest.raises(ValueError, match="at least 6 real and 6 generated"):
        prdc(real, fake[:5])


REFERENCE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from prdc import compute_prdc

    folder = sys.argv[1]
    out = {}
    for case in json.load(open(f"{folder}/cases.json")):
        real, fake = np.load(f"{folder}/{case}_real.npy"), np.load(f"{folder}/{case}_fake.npy")
        pr, dc = compute_prdc(real, fake, 3), compute_prdc(real, fake, 5)  # one k for all four in prdc
        out[case] = {"precision": pr["precision"], "recall": pr["recall"], "density": dc["density"],
                     "coverage": dc["coverage"]}
    json.dump({c: {k: float(v) for k, v in m.items()} for c, m in out.items()}, open(f"{folder}/prdc.json", "w"))
""")


def reference_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(real (N, D), fake (M, D)) float64 sets in several regimes, N != M so a swapped axis shows."""
    rng = np.random.default_rng(0)
    scale = np.linspace(0.5, 2.0, 16)  # anisotropic
    real = rng.normal(size=(400, 16)) * scale
    centres = real[:3]
    return {
        "same": (real, rng.normal(size=(300, 16)) * scale),
        "shifted": (real, rng.normal(size=(300, 16)) * scale + 0.7),
        "narrow": (real, rng.normal(size=(300, 16)) * scale * 0.5),  # high precision, low recall
        "wide": (real, rng.normal(size=(300, 16)) * scale * 1.6),  # the reverse
        "collapsed": (real, centres[rng.integers(0, 3, 300)] + 0.1 * rng.normal(size=(300, 16))),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    site = tmp_path_factory.mktemp("prdc_site")
    pip_install_or_skip(site, *REFERENCE)
    folder = tmp_path_factory.mktemp("prdc_reference")
    cases = reference_cases()
    for name, (real, fake) in cases.items():
        np.save(folder / f"{name}_real.npy", real)
        np.save(folder / f"{name}_fake.npy", fake)
    (folder / "cases.json").write_text(json.dumps(list(cases)))
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(folder)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return json.loads((folder / "prdc.json").read_text())


@pytest.mark.slow
def test_agrees_with_the_prdc_package(reference):
    ours = {name: prdc(torch.from_numpy(real), torch.from_numpy(fake), chunk=64)
            for name, (real, fake) in reference_cases().items()}
    for name, theirs in reference.items():
        for k, v in theirs.items():
            assert ours[name][k] == pytest.approx(v, abs=1e-12), (name, k)
    # the cases really are different regimes, so a metric that ignored its inputs would fail above
    assert ours["narrow"]["precision"] > 0.9 > 0.5 > ours["narrow"]["recall"]
    assert ours["wide"]["recall"] > 0.9 > 0.5 > ours["wide"]["precision"]
    assert ours["collapsed"]["coverage"] < 0.2 < 0.9 < ours["same"]["coverage"]


# ---- on Fashion-MNIST, through the platform's domain classifier ------------------------------------------

N = 2000  # images per set: two k-NN passes over 2,000 x 2,000 256-d features, well under a second


@pytest.fixture(scope="module")
def fashion_suite(fashion_classifier):
    """The suite a Fashion-MNIST run gets on a CPU (features=classifier), on the first N training images, and
    the test split at the same size: held-out real images (N, 1, 32, 32) in [-1, 1] and their labels."""
    if not FASHION.is_dir():
        pytest.skip("needs Fashion-MNIST (make data)")
    suite = Suite(IdxImages(str(FASHION), size=32), n=N, features="classifier")
    test = IdxImages(str(FASHION), size=32, split="t10k")
    test.setup()
    return suite, test.x, test.y


@pytest.mark.slow
def test_held_out_real_images_score_near_one(fashion_suite):
    """Test-split images against the training images, through the metrics a run logs: k-NN balls of 2,000
    points miss ~12% of a fresh sample of the same distribution (precision and recall ~0.88 here), density ~1,
    and coverage near its expectation for equal distributions, 1 - 2^-k = 0.97 (Naeem et al., k = 5)."""
    suite, x, _ = fashion_suite
    m = suite(x[:N])
    print(f"held-out: {m}")
    assert m["precision"] > 0.8 and m["recall"] > 0.8, m
    assert 0.85 < m["density"] < 1.15 and m["coverage"] > 0.9, m


@pytest.mark.slow
def test_a_generator_collapsed_to_three_classes_keeps_precision_and_loses_recall_and_coverage(fashion_suite):
    """Samples that are real test images of only 3 of the 10 classes (five triples drawn with a fixed seed): each
    is a real garment, so precision stays where held-out images have it; 7 classes are missing, so coverage
    falls to ~0.4 (0.3 of the real balls, and some neighbours of the kept classes) and recall by >= 0.2. Recall
    falls less than coverage: a few atypical kept images (a T-shirt like a shirt) have wide k-NN balls that reach
    into the missing classes, the outlier sensitivity Naeem et al. built coverage to avoid."""
    suite, x, y = fashion_suite
    features = embed(suite.features, to_uint8(x))  # (10000, 256) test-split features, as the suite embeds
    real, radii = suite.real(), knn_radii(suite.real())
    held_out = prdc(real, features[:N], radii)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        classes = torch.randperm(10, generator=g)[:3]
        m = prdc(real, features[torch.isin(y, classes)][:N], radii)
        print(f"classes {sorted(classes.tolist())}: {m}")
        assert m["precision"] > 0.8 and m["precision"] > held_out["precision"] - 0.1, (classes, m)
        assert m["coverage"] < 0.5 and m["coverage"] < held_out["coverage"] - 0.4, (classes, m)
        assert m["recall"] < 0.7 and m["recall"] < held_out["recall"] - 0.2, (classes, m)


@pytest.mark.parametrize("name", ["val/precision", "val/recall", "val/density", "val/coverage"])
def test_they_are_objectives_a_sweep_can_optimize_on_images_only(tmp_path, name):
    check_objective(make_cfg(tmp_path, "data=fashion_mnist", "metrics=default", f"optimized_metric={name}"))
    with pytest.raises(ConfigError, match=rf"^optimized_metric={name} is an image metric, but data=Grid is toy"):
        check_objective(make_cfg(tmp_path, "data=grid25", "metrics=default", f"optimized_metric={name}"))
    assert higher_is_better(name)  # report.py ranks and labels them higher-is-better
