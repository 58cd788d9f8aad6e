"""EBGAN and its auto-encoder critic: energies and the pull-away term in closed form, the margin objective on hand
values, bad configurations refused, and a short real Fashion-MNIST training in which real energies stay under the
margin, fakes are pushed up to it and the samples improve (FID on the domain classifier falls)."""
import statistics

import pytest
import torch

from ganlab.config import ConfigError, build
from ganlab.module import Latent
from ganlab.nets import autoencoder
from ganlab.train import build_module, train
from ganlab.variants.ebgan import pull_away

from ..conftest import CHEAP_KID, make_cfg, read_metrics


def small(tmp_path, *overrides):
    return make_cfg(tmp_path, "model=ebgan", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16", *overrides)


def module_of(cfg):
    return build_module(cfg, build(cfg.data, "data", seed=0))


# ---- the auto-encoder nets --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", autoencoder.SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_autoencoder_shapes_at_every_size(size, channels):
    shape = (channels, size, size)
    g = autoencoder.Generator(shape, z_dim=16, ch=4)
    d = autoencoder.Discriminator(shape, code=16, ch=4)
    x = g(torch.randn(2, 16) * 100)
    assert x.shape == (2, *shape) and x.abs().max() <= 1  # tanh for images
    out = d(x)
    assert out["recon"].shape == x.shape and out["features"].shape == (2, d.features_dim) == (2, 16)
    assert out["energy"].shape == out["logits"].shape == (2,)


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_energy_is_the_per_sample_mean_reconstruction_error(distance):
    torch.manual_seed(0)
    for shape in [(1, 28, 28), (2,)]:
        d = autoencoder.Discriminator(shape, code=8, ch=4, hidden=16, depth=2, distance=distance)
        x = torch.randn(3, *shape)
        out = d(x)
        err = (out["recon"] - x).flatten(1)
        expected = err.pow(2).mean(1) if distance == "l2" else err.abs().mean(1)
        assert torch.allclose(out["energy"], expected) and torch.equal(out["logits"], -out["energy"])
        assert (out["energy"] > 0).all()


def test_toy_vector_nets_are_mlps_with_a_linear_output():
    g = autoencoder.Generator((2,), z_dim=4, hidden=8, depth=2)
    x = g(torch.randn(500, 4) * 100)
    assert x.shape == (500, 2) and x.abs().max() > 1  # unbounded support
    assert not any(isinstance(m, torch.nn.Conv2d) for m in g.modules())
    assert autoencoder.Discriminator((2,), code=4, hidden=8, depth=2)(x)["features"].shape == (500, 4)


@pytest.mark.parametrize("kwargs, message", [({"shape": (1, 48, 48)}, "support image sizes"),
                                             ({"shape": (1, 32, 28)}, "square images"),
                                             ({"distance": "l3"}, "distance must be one of"),
                                             ({"num_classes": 10}, "no class conditioning"),
                                             ({"shape": (2,), "depth": 0}, "depth")])
def test_autoencoder_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        autoencoder.Discriminator(**{"shape": (1, 32, 32), **kwargs})


# ---- the objective ----------------------------------------------------------------------------------------
def test_pull_away_term_in_closed_form():
    e = torch.eye(4)
    assert pull_away(e).item() == pytest.approx(0.0, abs=1e-7)  # orthogonal codes
    same = torch.tensor([[1.0, 2.0, -1.0]]).repeat(5, 1)
    assert pull_away(same).item() == pytest.approx(1.0, abs=1e-6)  # identical codes: cos^2 = 1 for every pair
    assert pull_away(same * torch.tensor([[1.0], [-3.0], [2.0], [0.5], [-1.0]])).item() == pytest.approx(1.0, abs=1e-6)
    mixed = torch.stack([e[0], 2 * e[0], e[1]])  # one parallel pair of 6 ordered pairs
    assert pull_away(mixed).item() == pytest.approx(2 / 6, abs=1e-6)
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])  # cos^2 = 1/2
    assert pull_away(torch.stack([a, b])).item() == pytest.approx(0.5, abs=1e-6)
    assert pull_away(torch.ones(1, 3)).item() == 0.0  # no pairs


def test_margin_objective_on_hand_energies(tmp_path, idx_root):
    module = module_of(small(tmp_path, f"data.root={idx_root}", "model.margin=0.2", "model.lambda_pt=0.5"))
    real = {"energy": torch.tensor([0.1, 0.3])}
    fake = {"energy": torch.tensor([0.01, 0.5]), "features": torch.stack([torch.eye(3)[0], torch.eye(3)[0]])}
    loss, logs = module.d_objective(real, fake, None, Latent(torch.zeros(2, 64), None))
    assert loss.item() == pytest.approx(0.2 + (0.19 + 0.0) / 2)  # mean E(x) + mean max(0, m - E(G(z)))
    assert logs["train/energy_real"].item() == pytest.approx(0.2)
    assert logs["train/energy_fake"].item() == pytest.approx(0.255)
    loss, logs = module.g_objective(fake, torch.zeros(2, 1, 32, 32), None, Latent(torch.zeros(2, 64), None))
    assert loss.item() == pytest.approx(0.255 + 0.5 * 1.0)  # identical codes: PT = 1
    assert logs["train/pt"].item() == pytest.approx(1.0)


def test_pull_away_weight_zero_switches_it_off(tmp_path, idx_root):
    module = module_of(small(tmp_path, f"data.root={idx_root}", "model.lambda_pt=0"))
    fake = {"energy": torch.tensor([0.25, 0.75]), "features": torch.ones(2, 3)}
    loss, logs = module.g_objective(fake, torch.zeros(2, 1, 32, 32), None, Latent(torch.zeros(2, 64), None))
    assert loss.item() == pytest.approx(0.5) and "train/pt" not in logs


@pytest.mark.parametrize("override, message", [("model.margin=0", "margin must be > 0"),
                                               ("model.lambda_pt=-1", "lambda_pt must be >= 0"),
                                               ("net=dcgan ~net.d.distance", "needs an auto-encoder critic"),
                                               ("model.feature_matching=true", "feature_matching=false"),
                                               ("net.d.distance=l3", "distance must be one of")])
def test_bad_settings_are_refused(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(small(tmp_path, *override.split()))


def test_a_loss_object_is_refused(tmp_path, idx_root):
    cfg = small(tmp_path, f"data.root={idx_root}")
    cfg.loss = {"_target_": "ganlab.losses.Hinge"}
    with pytest.raises(ConfigError, match="uses no adversarial loss"):
        module_of(cfg)


# ---- learning ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_energies_stay_under_the_margin_fakes_are_pushed_up_and_fid_falls(tmp_path, fashion_classifier):
    """Real Fashion-MNIST (28 px, 8-channel nets), 150 iterations: the auto-encoder reconstructs data under the
    margin while D pushes the fakes' energies up to the data's and towards the margin (without the margin term G
    would drive them far below the data's), and FID on the domain classifier falls. The margin is above the
    error a barely trained 8-channel auto-encoder reaches (the preset's suits full-size nets and runs), and the
    learning rate is 1e-3 so that 150 iterations suffice."""
    margin = 0.5
    train(make_cfg(tmp_path, "model=ebgan", f"model.margin={margin}", "optim.g.lr=1e-3", "iterations=150",
                   "data.size=28", "net.g.ch=8", "net.d.ch=8", "data.batch_size=32", "trainer.log_every_n_steps=15",
                   "metrics=default", "metrics.every=25", "metrics.n=1000", CHEAP_KID))
    rows = read_metrics(tmp_path)
    real = [r["train/energy_real"] for r in rows if "train/energy_real" in r]
    fake = [r["train/energy_fake"] for r in rows if "train/energy_fake" in r]
    assert len(real) == len(fake) == 10
    assert all(e < margin for e in real[1:]), real  # after the first 15 iterations
    real_mean, fake_mean = statistics.fmean(real[1:]), statistics.fmean(fake[1:])
    assert fake_mean > 0.8 * real_mean and fake_mean > 0.6 * margin, (fake, real)
    fids = [r["val/fid"] for r in rows if "val/fid" in r]
    assert len(fids) == 6 and fids[-1] < 0.7 * fids[0], fids
