"""A loss written outside ganlab, as docs and README tell a user to: a Python module on sys.path with a subclass
of losses.Loss, and its YAML in a config directory of its own on Hydra's search path. RaGAN (Jolicoeur-Martineau
2019, "The relativistic discriminator: a key element missing from standard GAN", RaSGAN) is the example: its
values are pinned against the paper's formula in numpy, it trains with every preset that takes a loss of its kind,
and the presets that cannot take it refuse it in one line before training."""
import math
import textwrap

import numpy as np
import pytest
import torch
from hydra.utils import get_class

from ganlab.config import ConfigError
from ganlab.losses import Loss
from ganlab.train import train

from .conftest import make_cfg, read_metrics
from .test_presets import DOCUMENTED, HEAVY, LOSSES, PRESETS, check_run, documented_overrides, result_metrics

RAGAN = '''
"""RaSGAN (Jolicoeur-Martineau 2019): each critic score is read against the mean score of the other batch."""
import torch.nn.functional as F

from ganlab.losses import Loss


class RelativisticAverage(Loss):
    """L_D = -E_x log sigmoid(D(x) - E D(G(z))) - E_z log(1 - sigmoid(D(G(z)) - E D(x))),
    L_G the same with real and fake swapped; -log sigmoid(a) = softplus(-a), -log(1 - sigmoid(a)) = softplus(a)."""

    pairs = True  # G's loss reads the real logits too: g(fake, real)
    signed_logit = False  # D(x) alone has no zero point: only its difference from the other batch's mean has

    def d(self, real, fake):
        return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()

    def g(self, fake, real=None):
        if real is None:
            raise ValueError("loss=ragan reads fakes against the real batch: g(fake, real) needs the real logits")
        return F.softplus(-(fake - real.mean())).mean() + F.softplus(real - fake.mean()).mean()
'''


@pytest.fixture(scope="module")
def ragan_dir(tmp_path_factory):
    """A folder with the module (my_losses/ragan.py) and a config directory holding loss/ragan.yaml; the module's
    folder is on sys.path for this file's tests."""
    import sys

    root = tmp_path_factory.mktemp("user_loss")
    (root / "my_losses").mkdir()
    (root / "my_losses" / "__init__.py").write_text("")
    (root / "my_losses" / "ragan.py").write_text(RAGAN)
    (root / "conf" / "loss").mkdir(parents=True)
    (root / "conf" / "loss" / "ragan.yaml").write_text(textwrap.dedent("""\
        # RaSGAN (Jolicoeur-Martineau 2019): relativistic average, G's step also scores the real batch.
        _target_: my_losses.ragan.RelativisticAverage
        """))
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m == "my_losses" or m.startswith("my_losses.")]:
        del sys.modules[name]


def ragan_cfg(tmp_path, ragan_dir, *overrides):
    """The config with loss=ragan from the extra config directory (hydra.searchpath, as on the command line)."""
    return make_cfg(tmp_path, f"hydra.searchpath=[file://{ragan_dir / 'conf'}]", "loss=ragan", *overrides)


def rasgan_numpy(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """The paper's L_D and L_G, written with sigmoid and log as its equations are (float64)."""
    sigmoid = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    d = -np.mean(np.log(sigmoid(real - fake.mean()))) - np.mean(np.log(1.0 - sigmoid(fake - real.mean())))
    g = -np.mean(np.log(sigmoid(fake - real.mean()))) - np.mean(np.log(1.0 - sigmoid(real - fake.mean())))
    return float(d), float(g)


def test_ragan_is_found_beside_the_shipped_losses_and_matches_the_paper(tmp_path, ragan_dir):
    assert "ragan" not in LOSSES  # only the extra config directory holds it
    cfg = ragan_cfg(tmp_path, ragan_dir)
    cls = get_class(cfg.loss._target_)
    assert issubclass(cls, Loss) and cls.pairs and not cls.signed_logit and not cls.estimates_w1
    loss = cls()
    real = np.array([1.5, -0.3, 0.8, 2.2, 0.1])  # (B,) critic logits of a real and a fake batch
    fake = np.array([-1.2, 0.4, -0.7, -2.0, 0.9])
    d = loss.d(torch.tensor(real, dtype=torch.float32), torch.tensor(fake, dtype=torch.float32))
    g = loss.g(torch.tensor(fake, dtype=torch.float32), torch.tensor(real, dtype=torch.float32))
    want_d, want_g = rasgan_numpy(real, fake)
    assert d.item() == pytest.approx(want_d, rel=1e-6) and g.item() == pytest.approx(want_g, rel=1e-6)
    assert (want_d, want_g) == pytest.approx((0.60276984, 3.36276984), rel=1e-7)  # E D(G(z)) = -0.52, E D(x) = 0.86
    # a critic that cannot tell the batches apart: both losses are 2 log 2, whatever the common logit
    same = torch.full((4,), 3.0)
    assert loss.d(same, same).item() == pytest.approx(2 * math.log(2)) == loss.g(same, same).item()
    with pytest.raises(ValueError, match="needs the real logits"):
        loss.g(same)


def preset_data(preset: str) -> str:
    """The first data README names for the preset (toy points where it trains on them: the cheapest)."""
    return DOCUMENTED.get(preset, ["toy", "images"])[0]


@pytest.mark.parametrize("preset", [pytest.param(p, marks=[pytest.mark.slow] * ((p, preset_data(p)) in HEAVY))
                                    for p in PRESETS])
def test_ragan_trains_with_every_preset_that_takes_it_and_the_others_refuse_it(tmp_path, ragan_dir, idx_root,
                                                                                preset):
    overrides = documented_overrides(preset, preset_data(preset), idx_root, "loss=ragan",
                                     f"hydra.searchpath=[file://{ragan_dir / 'conf'}]")
    cfg = make_cfg(tmp_path / "run", *overrides, "iterations=2")
    # Refused: a preset whose objective replaces the adversarial loss chooses none (loss: null; ebgan, began), and
    # a translator's (cyclegan's) generator losses score translations alone: no real batch to pair (Loss.pairs)
    own_objective = make_cfg(tmp_path, f"model={preset}").loss is None
    translator = preset_data(preset) == "sneaker2boot"
    if own_objective or translator and get_class(cfg.loss._target_).pairs:
        assert (cfg.loss or {}).get("_target_") == "my_losses.ragan.RelativisticAverage"  # not dropped by it
        with pytest.raises(ConfigError) as refused:
            train(cfg)
        message = str(refused.value)
        # the option's name from the command line; a config composed without Hydra's run names the class
        named = (f"model={preset}", f"model={get_class(cfg.model._target_).__name__}")
        assert "\n" not in message and any(n in message for n in named), message
        assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training
        return
    result = result_metrics(train(cfg))
    check_run(tmp_path / "run", 2)
    assert all(math.isfinite(result[k]) for k in ("train/d_loss", "train/g_loss")), result
    assert not any("wasserstein" in k for r in read_metrics(tmp_path / "run") for k in r)  # estimates_w1 = False


def test_cyclegan_names_the_pairing_loss_it_refuses(tmp_path, ragan_dir, idx_root):
    cfg = make_cfg(tmp_path, *documented_overrides("cyclegan", "sneaker2boot", idx_root, "loss=ragan",
                                                   f"hydra.searchpath=[file://{ragan_dir / 'conf'}]"), "iterations=2")
    with pytest.raises(ConfigError, match="^loss=(ragan|RelativisticAverage) pairs each fake"):
        train(cfg)
