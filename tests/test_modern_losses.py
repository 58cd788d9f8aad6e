"""The modern recipe's loss and regularizers against their papers' definitions (as their official code computes
them): RpGAN's relativistic pairing (R3GAN's Trainer.py), R2 on fakes, LeCam's moving-average anchors
(google/lecam-gan); then each trains in the loop, LeCam's state resumes exactly, and model=r3gan builds and trains."""
import pytest
import torch
import torch.nn.functional as F

from ganlab.losses import RelativisticPairing
from ganlab.regularizers import LeCam, R2
from ganlab.train import train

from .conftest import make_cfg, read_metrics


def test_rpgan_pairs_the_ith_real_with_the_ith_fake():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 3.0])
    loss = RelativisticPairing()
    # D: -log sigmoid(D(x_i) - D(G(z_i))), G: -log sigmoid(D(G(z_i)) - D(x_i)), averaged over the pairs
    assert loss.d(real, fake) == pytest.approx(-torch.log(torch.sigmoid(real - fake)).mean().item(), rel=1e-6)
    assert loss.g(fake, real) == pytest.approx(-torch.log(torch.sigmoid(fake - real)).mean().item(), rel=1e-6)
    # pairing, not averages: shuffling one side changes it (RaGAN's means would not)
    assert loss.d(real, fake.flip(0)) != pytest.approx(loss.d(real, fake).item())
    with pytest.raises(ValueError, match="real logits"):
        loss.g(fake)


def test_r2_is_gamma_over_two_times_the_squared_input_gradient_on_fakes():
    w = torch.tensor([3.0, -4.0])  # D(x) = w.x: grad = w, ||grad||^2 = 25
    critic = lambda x: {"logits": x @ w}  # noqa: E731
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert R2(weight=0.1).penalty(critic, real, fake, 0).item() == pytest.approx(0.5 * 0.1 * 25)
    quad = lambda x: {"logits": (x ** 2).sum(1)}  # noqa: E731  grad = 2x: on the fakes, not the reals
    assert R2(weight=2.0).penalty(quad, real, fake, 0).item() == pytest.approx((4 * fake ** 2).sum(1).mean().item(),
                                                                              rel=1e-5)


def test_lecam_anchors_follow_the_mean_outputs_and_penalise_as_the_official_code():
    reg = LeCam(weight=0.3, decay=0.9, start=2)
    steps = [(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])),  # means 2, -0.5
             (torch.tensor([0.0, 2.0]), torch.tensor([1.0, 2.0])),  # means 1, 1.5
             (torch.tensor([4.0, 2.0]), torch.tensor([0.0, -2.0]))]  # means 3, -1
    assert reg.output_penalty(*steps[0], step=0) is None and (reg.alpha_real, reg.alpha_fake) == (2.0, -0.5)
    assert reg.output_penalty(*steps[1], step=1) is None and (reg.alpha_real, reg.alpha_fake) == (1.0, 1.5)  # decay 0
    real, fake = steps[2]
    pen = reg.output_penalty(real, fake, step=2)
    a_r, a_f = 0.9 * 1.0 + 0.1 * 3.0, 0.9 * 1.5 + 0.1 * -1.0  # updated before the penalty (losses.py order)
    assert (reg.alpha_real, reg.alpha_fake) == (pytest.approx(a_r), pytest.approx(a_f))
    expected = 0.3 * (F.relu(real - a_f).pow(2).mean() + F.relu(a_r - fake).pow(2).mean())
    assert pen.item() == pytest.approx(expected.item(), rel=1e-6)
    again = LeCam(weight=0.3, decay=0.9, start=2)
    again.load_state_dict(reg.state_dict())
    assert (again.alpha_real, again.alpha_fake) == (reg.alpha_real, reg.alpha_fake)


@pytest.mark.parametrize("setting", [["loss=rpgan", "regularizer=[r1,r2]"], ["regularizer=[lecam]",
                                                                              "regularizer.lecam.start=2"]],
                         ids=["rpgan_r1_r2", "lecam"])
def test_each_part_trains_and_resumes_exactly(tmp_path, idx_root, setting):
    run = ["data=fashion_mnist", f"data.root={idx_root}", "model=dcgan", "net.g.ch=8", "net.d.ch=8", "net.d.norm=none",
           "data.batch_size=16", "iterations=8", "callbacks.checkpoint.every=4", "callbacks.checkpoint.keep=true",
           *setting]
    train(make_cfg(tmp_path / "full", *run))
    train(make_cfg(tmp_path / "resumed", *run, f"ckpt_path={tmp_path}/full/checkpoints/iter_0000004.ckpt"))
    full, resumed = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "resumed")
    name = "train/lecam" if "lecam" in setting[0] else "train/r2"
    assert all(name in r for r in full if r["step"] > 2) and all(v == v for r in full for v in r.values())
    assert resumed == [r for r in full if r["step"] > 4]  # the anchors and the pairing go on exactly


def test_r3gan_preset_trains(tmp_path, idx_root):
    train(make_cfg(tmp_path, "model=r3gan", "data=fashion_mnist", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8",
                   "data.batch_size=8", "iterations=2"))
    row = read_metrics(tmp_path)[-1]
    assert {"train/d_loss", "train/g_loss", "train/r1", "train/r2"} <= set(row)
