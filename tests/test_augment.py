"""augment=diffaug and augment=ada against their papers' code (data-efficient-gans' DiffAugment_pytorch.py,
stylegan2-ada-pytorch's augment.py and training_loop.py) on tiny tensors; the loop's use of them (every critic
input, penalties included); ADA's p update, its checkpoint state and resume; short trainings; bad configs."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganlab.augment import Augment
from ganlab.augment.ada import ADA
from ganlab.augment.diffaug import DiffAugment, cutout_size, shift_range, translate
from ganlab.augment.pipe import apply_colour, blit, colour_matrix
from ganlab.config import ConfigError, build
from ganlab.ranks import Ranks
from ganlab.train import build_module, train

from .conftest import make_cfg, read_metrics

def images(idx_root, model: str = "dcgan") -> list[str]:
    return [f"model={model}", "data=fashion_mnist", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8",
            "data.batch_size=16"]


CYCLEGAN = ["model=cyclegan", "data=sneaker2boot", "net.g.ch=8", "net.g.blocks=2", "net.d.ch=8", "net.d.layers=2",
            "data.batch_size=16", "callbacks.translations.cycle_n=8"]


# ---- DiffAugment ---------------------------------------------------------------------------------------------
def test_translation_shifts_by_the_drawn_amount_with_zero_fill():
    x = torch.arange(1, 1 + 2 * 6 * 6, dtype=torch.float32).view(1, 2, 6, 6)
    out = translate(x, torch.tensor([2]), torch.tensor([-1]))
    expect = torch.zeros_like(x)
    expect[..., :4, 1:] = x[..., 2:, :5]  # out[i, j] = x[i + 2, j - 1]
    assert torch.equal(out, expect)


def test_translation_draws_every_shift_up_to_an_eighth_of_the_side_and_no_more():
    torch.manual_seed(0)
    side = 16
    s = shift_range(side)
    assert s == 2  # int(16 / 8 + 0.5)
    x = torch.arange(1, side * side + 1, dtype=torch.float32).view(1, 1, side, side).repeat(300, 1, 1, 1)
    out = DiffAugment("translation")(x)
    shifts = [(tx, ty) for tx in range(-4, 5) for ty in range(-4, 5)]
    moved = [translate(x[:1], torch.tensor([tx]), torch.tensor([ty]))[0] for tx, ty in shifts]
    seen = set()
    for o in out:
        (hit,) = [shift for shift, m in zip(shifts, moved) if torch.equal(o, m)]
        seen.add(hit)
    assert seen == {(tx, ty) for tx in range(-s, s + 1) for ty in range(-s, s + 1)}


def test_cutout_zeroes_a_square_of_half_the_side_cut_to_the_image():
    torch.manual_seed(0)
    side, n = 16, 400
    size = cutout_size(side)
    assert size == 8
    out = DiffAugment("cutout")(torch.ones(n, 3, side, side))
    whole = 0
    for o in out:
        assert torch.equal(o[0], o[1]) and torch.equal(o[0], o[2])  # the same square in every channel
        rows, cols = (o[0] == 0).nonzero(as_tuple=True)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert len(rows) == (r1 - r0) * (c1 - c0)  # a filled rectangle, everything else untouched
        for lo, hi in ((r0, r1), (c0, c1)):  # a side is 8 unless the square crosses the border
            assert hi - lo == size or (lo == 0 and hi < size) or (hi == side and hi - lo < size)
            assert hi - lo >= size - size // 2  # the centre is in the image: at least half of it stays
        whole += r1 - r0 == size
    assert 0.45 < whole / n < 0.61  # the centre row uniform on [0, 16]: 9 of 17 keep the whole square's rows


def test_colour_ops_follow_the_authors_formulas():
    x = torch.randn(5, 3, 4, 4)
    torch.manual_seed(1)
    u1, u2, u3 = torch.rand(5), torch.rand(5), torch.rand(5)  # the three draws, in the authors' order
    expect = x + (u1.view(-1, 1, 1, 1) - 0.5)  # brightness
    m = expect.mean(dim=1, keepdim=True)
    expect = (expect - m) * (2 * u2.view(-1, 1, 1, 1)) + m  # saturation: about the per-pixel channel mean
    m = expect.mean(dim=(1, 2, 3), keepdim=True)
    expect = (expect - m) * (u3.view(-1, 1, 1, 1) + 0.5) + m  # contrast: about the image mean
    torch.manual_seed(1)
    assert torch.allclose(DiffAugment("color")(x), expect, atol=1e-6)


def test_diffaug_is_differentiable_wrt_its_input():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)

    def fixed_draws(x):
        torch.manual_seed(0)
        return DiffAugment("color,translation,cutout")(x)

    assert torch.autograd.gradcheck(fixed_draws, (x,))
    fixed_draws(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_each_call_and_each_sample_draws_anew():
    """The authors augment the real and the fake batch by separate calls, each sample with its own draws."""
    torch.manual_seed(0)
    aug = DiffAugment()
    x = torch.randn(1, 3, 16, 16).repeat(8, 1, 1, 1)
    a, b = aug(x), aug(x)
    assert not torch.equal(a, b)
    assert len({tuple(o.flatten().tolist()) for o in a}) == 8


def test_policy_order_is_the_strings():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    assert DiffAugment("cutout,color").policy == DiffAugment(["cutout", "color"]).policy == ["cutout", "color"]
    torch.manual_seed(3)
    a = DiffAugment("translation,cutout")(x)
    torch.manual_seed(3)
    b = DiffAugment("cutout")(DiffAugment("translation")(x))
    assert torch.equal(a, b)


# ---- ADA's pipeline ------------------------------------------------------------------------------------------
def _blit(x, flip=0, quarter=0, tx=0, ty=0):
    t = lambda v: torch.full((x.shape[0],), v, dtype=torch.long)  # noqa: E731
    return blit(x, t(flip), t(quarter), t(tx), t(ty))


def test_blit_flips_turns_and_translates_with_reflect_padding():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).view(1, 2, 5, 5)
    assert torch.equal(_blit(x), x)
    assert torch.equal(_blit(x, flip=1), x.flip(-1))
    assert torch.equal(_blit(x, quarter=2), x.flip(-1).flip(-2))
    turns = {_blit(x, quarter=k).flatten().tolist().__repr__() for k in (1, 3)}
    assert turns == {torch.rot90(x, k, (2, 3)).flatten().tolist().__repr__() for k in (1, 3)}
    # content moves by +t, the uncovered side filled by reflection (torch's mode='reflect', ADA's padding)
    assert torch.equal(_blit(x, tx=2), F.pad(x, (2, 0, 0, 0), mode="reflect")[..., :5])
    assert torch.equal(_blit(x, ty=-2), F.pad(x, (0, 0, 0, 2), mode="reflect")[..., 2:, :])


def _colour(x, b=0.0, c=1.0, flip=0.0, theta=0.0, s=1.0):
    t = lambda v: torch.full((x.shape[0],), float(v))  # noqa: E731
    return apply_colour(x, colour_matrix(t(b), t(c), t(flip), t(theta), t(s)))


def test_colour_transforms_follow_adas_matrices():
    grey = torch.randn(2, 1, 4, 4)
    assert torch.allclose(_colour(grey), grey)
    assert torch.allclose(_colour(grey, b=0.3, c=2.0), (grey + 0.3) * 2.0, atol=1e-6)  # brightness, then contrast
    assert torch.allclose(_colour(grey, flip=1), -grey, atol=1e-6)  # luma flip of a grey pixel
    rgb = torch.randn(2, 3, 4, 4)
    assert torch.allclose(_colour(rgb, theta=2 * math.pi / 3), rgb[:, [2, 0, 1]], atol=1e-5)  # hue: 120° about grey
    assert torch.allclose(_colour(rgb, s=0.0), rgb.mean(1, keepdim=True).expand_as(rgb), atol=1e-6)  # no saturation
    mean = rgb.mean(1, keepdim=True)
    assert torch.allclose(_colour(rgb, s=2.0), mean + 2 * (rgb - mean), atol=1e-5)
    assert torch.allclose(_colour(rgb, flip=1), rgb - 2 * mean, atol=1e-5)  # Householder about (1, 1, 1)/sqrt 3


def test_ada_pipe_is_identity_at_p0_and_differentiable():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert ADA(p=0.0)(x) is x
    ada = ADA(p=1.0)

    def fixed_draws(x):
        torch.manual_seed(0)
        return ada(x)

    assert not torch.equal(fixed_draws(x), x)
    assert torch.autograd.gradcheck(fixed_draws, (x,))


# ---- ADA's heuristic -----------------------------------------------------------------------------------------
def _observe(ada, sign, steps, n=16, start=0, ranks=Ranks()):
    for step in range(start, start + steps):
        ada.observe(torch.full((n,), sign), n, step, ranks)


def test_ada_p_rises_when_r_t_is_above_target_and_falls_below_by_the_papers_step():
    step = 16 * 4 / (500 * 1000)  # batch x interval / (ada_kimg x 1000)
    ada = ADA(p=0.5, target=0.6)
    _observe(ada, 1.0, 3)
    assert ada.p == 0.5 and ada.r_t() == 1.0  # only every 4th step
    _observe(ada, 1.0, 1, start=3)
    assert ada.p == pytest.approx(0.5 + step) and ada.r_t() is None
    _observe(ada, -1.0, 8, start=4)
    assert ada.p == pytest.approx(0.5 - step)
    mixed = ADA(p=0.5, target=0.6)  # r_t = 0.5 (three quarters positive) < 0.6: down
    for s in range(4):
        mixed.observe(torch.tensor([1.0, 1.0, 1.0, -1.0]), 4, s)
    assert mixed.p == pytest.approx(0.5 - 4 * 4 / 500_000)


def test_ada_p_is_clamped_to_0_1_and_fixed_without_a_target():
    low, high = ADA(p=0.0, target=0.6, kimg=0.01), ADA(p=1.0, target=0.6, kimg=0.01)
    _observe(low, -1.0, 4)
    _observe(high, 1.0, 4)
    assert low.p == 0.0 and high.p == 1.0
    up = ADA(p=0.9, target=0.6, kimg=0.01)  # a step of 6.4
    _observe(up, 1.0, 4)
    assert up.p == 1.0
    fixed = ADA(p=0.3, target=None)
    _observe(fixed, 1.0, 8)
    assert fixed.p == 0.3


def test_ada_sums_signs_over_the_ranks(monkeypatch):
    """Under DDP each step's sum of signs is all-reduced, and images count the global batch."""
    calls = []

    def all_reduce(t):  # the other rank saw negative logits only
        calls.append(t.clone())
        t.add_(-16.0)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    ada = ADA(p=0.5, target=0.6)
    _observe(ada, 1.0, 3, ranks=Ranks(0, 2))
    assert len(calls) == 3 and ada.r_t() == 0.0 and ada.images == 3 * 32
    _observe(ada, 1.0, 1, start=3, ranks=Ranks(0, 2))
    assert ada.p == pytest.approx(0.5 - 32 * 4 / 500_000)  # r_t = 0 over both ranks: down


def test_ada_state_round_trips():
    ada = ADA(p=0.25, target=0.6)
    _observe(ada, 1.0, 2)
    other = ADA(target=0.6)
    other.load_state_dict(ada.state_dict())
    assert other.state_dict() == ada.state_dict() == {"p": 0.25, "signs": 32.0, "count": 32, "images": 32}
    _observe(ada, 1.0, 2, start=2)
    _observe(other, 1.0, 2, start=2)
    assert other.p == ada.p > 0.25


# ---- the loop ------------------------------------------------------------------------------------------------
class Recorder(Augment):
    """Adds 100 to every input and records what it saw, and what observe saw."""

    def __init__(self):
        self.inputs, self.observed = [], []

    def __call__(self, x, ranks=Ranks()):
        self.inputs.append(x.detach().clone())
        return x + 100.0

    def observe(self, real_logits, n, step, ranks=Ranks()):
        self.observed.append((real_logits.detach().clone(), n, step))


def test_every_critic_input_and_the_penalty_are_augmented(tmp_path, idx_root):
    cfg = make_cfg(tmp_path, *images(idx_root), "net.d.norm=none", "regularizer=[r1]", "regularizer.r1.every=1")
    data = build(cfg.data, "data", seed=0)
    data.setup("fit")
    module = build_module(cfg, data)
    module.augment = rec = Recorder()
    seen = []
    module.discriminator.register_forward_hook(lambda m, args, out: seen.append((args[0].detach(), out)))
    real = torch.rand(16, 1, 32, 32) * 2 - 1
    module.critic_loss(real, None)
    assert len(rec.inputs) == 2 and torch.equal(rec.inputs[0], real)  # the real batch, then the fakes
    assert [s[0].min() > 50 for s in seen] == [True] * 3  # D read augmented real, fake, and the penalty's input
    assert torch.equal(seen[2][0], real + 100.0)  # R1 on the augmented reals (the authors' ns_r1_DiffAugment)
    (logits, n, step), = rec.observed
    assert torch.equal(logits, seen[0][1]["logits"].detach()) and (n, step) == (16, 0)
    rec.inputs.clear()
    seen.clear()
    module.generator_loss(real, None)
    assert len(rec.inputs) == 1 and len(seen) == 1 and seen[0][0].min() > 50  # G's fakes, augmented


def test_diffaug_and_ada_train_two_iterations_and_log_p(tmp_path, idx_root):
    train(make_cfg(tmp_path / "diffaug", *images(idx_root), "augment=diffaug", "iterations=2"))
    rows = read_metrics(tmp_path / "diffaug")
    assert [r["train/d_loss"] for r in rows if "train/d_loss" in r] and not any("train/ada_p" in r for r in rows)
    cfg = make_cfg(tmp_path / "ada", *images(idx_root), "augment=ada", "augment.p=0.5", "augment.interval=1",
                   "augment.kimg=1", "iterations=2")
    train(cfg)
    rows = [r for r in read_metrics(tmp_path / "ada") if "train/ada_p" in r]
    assert len(rows) == 2  # p moves by 16 / 1000 per critic step (interval 1, kimg 1), up or down
    assert abs(rows[0]["train/ada_p"] - 0.5) == pytest.approx(0.016)
    assert abs(rows[1]["train/ada_p"] - rows[0]["train/ada_p"]) == pytest.approx(0.016)
    from ganlab.module import GANModule

    assert "train/ada_p" in GANModule.logged(cfg)


def test_ada_resumes_with_the_same_p_and_losses(tmp_path, idx_root):
    """A checkpoint at iteration 3 falls mid-interval (4 critic steps): p and the counts since the last
    adjustment must both come back for the losses and p of iterations 4-6 to be the uninterrupted run's."""
    overrides = [*images(idx_root), "augment=ada", "augment.p=0.3", "augment.kimg=1", "iterations=6",
                 "callbacks.checkpoint.every=3", "callbacks.checkpoint.keep=true"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train(make_cfg(full, *overrides))
    train(make_cfg(resumed, *overrides, f"ckpt_path={full}/checkpoints/iter_0000003.ckpt"))
    keys = ("train/d_loss", "train/g_loss", "train/ada_p")
    rows = lambda out: {int(r["step"]): tuple(r[k] for k in keys) for r in read_metrics(out)  # noqa: E731
                        if "train/d_loss" in r}
    a, b = rows(full), rows(resumed)
    assert sorted(b) == [4, 5, 6] and all(b[s] == a[s] for s in b)
    assert a[4][2] != 0.3  # p moved at the 4th critic step (with what the checkpoint carried of steps 1-3)
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ganlab_augment"] == torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["ganlab_augment"]


# ---- bad configs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, key", [
    (["augment=diffaug", "augment.policy='color,zoom'"], "augment.policy"),
    (["augment=diffaug", "augment.policy=[color,zoom]"], "augment.policy"),
    (["augment=diffaug", "augment.policy=''"], "augment.policy"),
    (["augment=ada", "augment.target=1.5"], "augment.target"),
    (["augment=ada", "augment.target=0"], "augment.target"),
    (["augment=ada", "augment.pipe=bgc"], "augment.pipe"),
    (["augment=ada", "loss=wgan"], "augment.target"),
    (["augment=ada", "loss=lsgan"], "augment.target"),
])
def test_bad_augment_settings_are_one_error_naming_the_key(tmp_path, idx_root, overrides, key):
    with pytest.raises(ConfigError) as e:
        train(make_cfg(tmp_path, *images(idx_root), *overrides))
    assert str(e.value).startswith(key), str(e.value)
    assert not (tmp_path / "checkpoints").exists()


def test_augment_is_refused_on_toy_data_and_ada_where_no_logit_sign_reaches_it(tmp_path, idx_root):
    with pytest.raises(ConfigError, match=r"^augment=diffaug transforms images, but data=.* use augment=none"):
        train(make_cfg(tmp_path, "data=grid25", "model=gan", "augment=diffaug"))
    with pytest.raises(ConfigError, match=r"(?i)^augment.target: .*model=began \(an energy critic\)"):
        train(make_cfg(tmp_path, *images(idx_root, "began"), "augment=ada"))
    with pytest.raises(ConfigError, match=r"(?i)^augment.target: .*model=cyclegan computes in its own critic step"):
        train(make_cfg(tmp_path, *CYCLEGAN, f"data.root={idx_root}", "augment=ada"))
    # a fixed p reads no logits: allowed with any loss
    train(make_cfg(tmp_path / "fixed", *images(idx_root), "loss=wgan", "augment=ada", "augment.target=null",
                   "augment.p=0.5", "iterations=1"))


def test_cyclegan_augments_both_critics_inputs(tmp_path, idx_root):
    """CycleGAN's critics judge images of a domain: DiffAugment applies to both (its own critic step calls
    perturb), real, pooled fakes and the generator step's translations."""
    cfg = make_cfg(tmp_path, *CYCLEGAN, f"data.root={idx_root}", "augment=diffaug", "iterations=1")
    data = build(cfg.data, "data", seed=0)
    module = build_module(cfg, data)
    assert isinstance(module.augment, DiffAugment)
    module.augment = rec = Recorder()
    a, b = torch.rand(2, 16, 1, 32, 32) * 2 - 1
    module.critic_loss(a, b)
    module.generator_loss(a, b)
    assert len(rec.inputs) == 6  # (real, fake) per critic, then a translation per critic
