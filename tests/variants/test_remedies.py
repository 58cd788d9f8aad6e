"""Mode-collapse remedies usable with any preset: minibatch standard deviation, minibatch discrimination,
packing (PacGAN) and feature matching."""
import math

import pytest
import torch

from ganlab.config import ConfigError, build
from ganlab.nets import dcgan, mlp
from ganlab.nets.layers import MinibatchDiscrimination, MinibatchStd
from ganlab.train import build_module, train

from ..conftest import make_cfg, read_metrics
from ..test_presets import SMALL_TOY, check_run, small_images


def test_minibatch_std_in_closed_form():
    x = torch.tensor([[0.0, 2.0], [2.0, 2.0], [0.0, 4.0], [2.0, 4.0]])  # groups of 4: per-feature std 1 and 1
    out = MinibatchStd(group=4)(x)
    assert out.shape == (4, 3) and torch.allclose(out[:, 2], torch.ones(4), atol=1e-4)
    same = MinibatchStd(group=2)(torch.ones(6, 3, 4, 4))  # no variety: the extra channel is ~0
    assert same.shape == (6, 4, 4, 4) and same[:, 3].abs().max() < 1e-3
    assert MinibatchStd(group=4)(torch.randn(6, 5)).shape == (6, 6)  # 6 % 4 != 0: groups of 3


def test_minibatch_discrimination_in_closed_form():
    layer = MinibatchDiscrimination(features=3, kernels=4, dim=2)
    same = layer(torch.ones(5, 3))  # identical samples: exp(0) from each of the 4 others
    assert same.shape == (5, 7) and torch.allclose(same[:, 3:], torch.full((5, 4), 4.0))
    with torch.no_grad():
        layer.T.fill_(1.0)
    apart = layer(torch.tensor([[0.0, 0, 0], [100.0, 0, 0]]))  # far apart: nothing close
    assert torch.allclose(apart[:, 3:], torch.zeros(2, 4), atol=1e-6)


@pytest.mark.parametrize("kind", ["std", "discrimination"])
@pytest.mark.parametrize("make_d", [lambda kind: dcgan.Discriminator((1, 32, 32), ch=8, norm="none", minibatch=kind),
                                    lambda kind: mlp.Discriminator((2,), hidden=16, minibatch=kind)])
def test_the_critic_sees_the_batch(make_d, kind):
    torch.manual_seed(0)
    d = make_d(kind)
    x = torch.randn(4, *((1, 32, 32) if isinstance(d, dcgan.Discriminator) else (2,)))
    alone = d(x)["logits"][0]
    in_other_company = d(torch.cat([x[:1], torch.randn(3, *x.shape[1:])]))["logits"][0]
    assert not torch.isclose(alone, in_other_company)  # sample 0's score depends on the rest of its batch


@pytest.mark.slow
@pytest.mark.parametrize("data", ["toy", "images"])
@pytest.mark.parametrize("preset, remedy", [("nsgan", "net.d.minibatch=std"), ("nsgan", "net.d.minibatch=discrimination"),
                                            ("nsgan", "model.pack=2"), ("nsgan", "model.feature_matching=true"),
                                            ("wgan_gp", "net.d.minibatch=std"), ("wgan_gp", "model.pack=2"),
                                            ("lsgan", "model.feature_matching=true")])
def test_every_remedy_trains_with_any_preset(tmp_path, idx_root, preset, remedy, data):
    overrides = [*SMALL_TOY, "data.batch_size=64"] if data == "toy" else small_images(idx_root)
    train(make_cfg(tmp_path, f"model={preset}", remedy, "iterations=2", *overrides))
    check_run(tmp_path, 2)


def test_packing_puts_m_samples_side_by_side(tmp_path, idx_root):
    cfg = make_cfg(tmp_path, "model.pack=3", *small_images(idx_root)[:2], "net.g.ch=8", "net.d.ch=8",
                   "data.batch_size=15")
    module = build_module(cfg, build(cfg.data, "data", seed=0))
    assert module.discriminator.trunk[0].in_channels == 3  # 3 grey images per critic input
    x = torch.randn(15, 1, 32, 32)
    assert module.critic(x)["logits"].shape == (5,)
    packed_by_hand = module.discriminator(x.reshape(5, 3, 32, 32))["logits"]
    assert torch.equal(module.critic(x)["logits"], packed_by_hand)
    with pytest.raises(ConfigError, match="not a multiple of model.pack=3"):
        train(make_cfg(tmp_path, "model.pack=3", "data.batch_size=16", *small_images(idx_root)[:2]))


def test_feature_matching_replaces_the_generator_loss(tmp_path):
    train(make_cfg(tmp_path, "model.feature_matching=true", "iterations=20", *SMALL_TOY))
    g = [r["train/g_loss"] for r in read_metrics(tmp_path) if "train/g_loss" in r]
    assert all(v >= 0 and math.isfinite(v) for v in g)  # a squared distance, unlike the NS loss's values
    cfg = make_cfg(tmp_path, "model.feature_matching=true", *SMALL_TOY)
    module = build_module(cfg, build(cfg.data, "data", seed=0))
    real = torch.randn(8, 2)
    fake = module.critic(real)  # fakes whose features equal the real ones: nothing to match
    latent = module.latent(8, None)
    assert module.g_adversarial(fake, real, latent).item() == pytest.approx(0.0, abs=1e-10)
