"""InfoGAN: the information term and its lower bound in closed form, traversal grids, and Q recovering the
categorical code from G's samples after a short real training."""
import math

import pytest
import torch

from ganlab.config import ConfigError, build
from ganlab.module import Latent
from ganlab.train import build_module, train

from ..conftest import make_cfg, read_metrics


def small(tmp_path, *overrides):
    return make_cfg(tmp_path, "model=infogan", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16", *overrides)


def module_of(cfg):
    return build_module(cfg, build(cfg.data, "data", seed=0))


def test_the_information_bound_in_closed_form(tmp_path, idx_root):
    module = module_of(small(tmp_path, f"data.root={idx_root}"))
    z = torch.randn(5, module.generator.z_dim)
    c = torch.tensor([0, 3, 9, 2, 2])
    perfect = torch.cat([100.0 * torch.nn.functional.one_hot(c, 10), z[:, :2]], 1)  # certain category, exact means
    loss, bound = module.information(perfect, Latent(z, c))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert bound.item() == pytest.approx(math.log(10) + 2 * 0.5, abs=1e-5)  # H(c) + 2 x (H(N(0,1)) - 1/2 log 2 pi e + 1/2)
    blind = torch.zeros(5, 12)  # uniform over categories, means 0
    loss, bound = module.information(blind, Latent(z, c))
    sq = z[:, :2].pow(2).mean(0)
    assert bound.item() == pytest.approx((0.5 - 0.5 * sq).sum().item(), abs=1e-5)  # nothing known of the category
    assert loss.item() == pytest.approx(math.log(10) + 0.1 * 0.5 * sq.sum().item(), rel=1e-5)


@pytest.mark.parametrize("override, message", [("model.categorical=1", "categorical must be 0"),
                                               ("model.continuous=1000", "continuous must be in"),
                                               ("model.lambda_cat=-1", "must be >= 0")])
def test_bad_codes_are_refused(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(small(tmp_path, override))


def test_traversal_grids_hold_a_row_per_category_and_a_column_per_value(tmp_path, idx_root):
    train(small(tmp_path, f"data.root={idx_root}", "iterations=2"))
    from PIL import Image

    for j in (0, 1):
        grid = Image.open(tmp_path / "samples" / f"traversal_c{j}_iter_0000002.png")
        assert grid.size == (8 * 34 + 2, 10 * 34 + 2)  # 8 columns, 10 rows of 32-px images with 2-px padding
    module = module_of(small(tmp_path, f"data.root={idx_root}"))
    x = module.traversal(0, 8)  # (80, 1, 32, 32)
    assert x.shape == (80, 1, 32, 32)
    assert not torch.allclose(x[0], x[7]) and not torch.allclose(x[0], x[8])  # value and category both matter


@pytest.mark.slow
def test_q_recovers_the_categorical_code_far_above_chance(tmp_path):
    """Real Fashion-MNIST, 300 iterations of narrow nets (ch 16): Q names the category G was given for most fresh
    samples (chance 10%), and the logged mutual-information bound rises towards log 10. Measured (one thread,
    2026-12-07), seeds 0 / 1 / 2: bound 0.04 -> 2.87, 0.09 -> 2.88, 0.09 -> 3.02; Q accuracy 1.000, 0.999, 0.996."""
    cfg = make_cfg(tmp_path, "model=infogan", "iterations=300", "net.g.ch=16", "net.d.ch=16",
                   "trainer.log_every_n_steps=50")
    train(cfg)
    bounds = [r["train/mi_bound"] for r in read_metrics(tmp_path) if "train/mi_bound" in r]
    assert bounds[-1] > bounds[0] + 0.5 and bounds[-1] > 0.6 * math.log(10), bounds
    module = module_of(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        latent = module.latent(1000, None)
        q = module.discriminator(module.generator(*latent))["q"]
    accuracy = (q[:, :10].argmax(1) == latent.c).float().mean().item()
    print(f"mi_bound {bounds[0]:.3f} -> {bounds[-1]:.3f}, Q accuracy {accuracy:.3f}")
    assert accuracy >= 0.8, accuracy
