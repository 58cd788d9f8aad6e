"""The alternating loop: steps touch only their own net's gradients; counters and the run length."""
import torch

from ganlab.module import GANModule
from ganlab.result import End
from ganlab.train import train

from .conftest import make_cfg, read_metrics


def grads(net):
    return [None if p.grad is None else p.grad.clone() for p in net.parameters()]


def same(a, b):
    return all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y)) for x, y in zip(a, b))


class Recording(GANModule):
    """Snapshots of both nets' gradients around the generator step."""

    snapshots: list = []

    def generator_loss(self, real, y):  # called after the critic step, before G's backward
        self.snapshots.append(("before_g", grads(self.generator), grads(self.discriminator)))
        return super().generator_loss(real, y)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.snapshots.append(("after_g", grads(self.generator), grads(self.discriminator)))


def test_generator_step_leaves_critic_gradients_and_critic_step_leaves_generator_gradients(tmp_path):
    cfg = make_cfg(tmp_path, "data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=3",
                   "model._target_=tests.test_module.Recording")
    Recording.snapshots = []
    train(cfg)
    snaps = Recording.snapshots
    assert [s[0] for s in snaps] == ["before_g", "after_g"] * 3
    for (_, g0, d0), (_, g1, d1) in zip(snaps[0::2], snaps[1::2]):
        assert same(d0, d1)  # the G step added nothing to D's gradients (D was toggled off)
        assert not same(g0, g1)  # and did fill G's
    for (_, g_prev, _), (_, g_next, d_next) in zip(snaps[1::2], snaps[2::2]):
        assert same(g_prev, g_next)  # the critic step (fakes under no_grad) left G's gradients alone
        assert all(d is not None for d in d_next)


def test_counters_and_run_length(tmp_path):
    result = train(make_cfg(tmp_path, "data=grid25", "model=wgan_gp", "net.g.hidden=16", "net.d.hidden=16",
                            "iterations=7"))
    assert (result.end, result.iteration, result.signum) == (End.COMPLETED, 7, None)  # callbacks/stop.py ends it
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ganlab_steps"] == {"d_steps": 35, "g_steps": 7}  # n_critic = 5
    assert ckpt["global_step"] == 42  # Lightning counts every optimizer step: why schedules don't use it
    assert [r["step"] for r in read_metrics(tmp_path) if "train/d_loss" in r] == list(range(1, 8))
    assert {"train/d_loss", "train/g_loss", "train/gp", "train/wasserstein"} <= set(result.metrics)


class Reusing(GANModule):
    """Records, at each generator step, the gradient G's loss should have if G's step scores the critic step's
    fakes: the non-saturating loss of the critic as it is after its step on those latents, computed here apart
    from the module's step."""

    expected: list = []
    got: list = []

    def critic_loss(self, real, y):
        loss, logs = super().critic_loss(real, y)
        self.latents = self.fakes.kept[0].z.clone() if self.fakes.kept is not None else None
        return loss, logs

    def generator_loss(self, real, y):
        fake = self.generator(self.latents)  # (B, 2): G has not stepped since the critic step drew them
        logits = self.discriminator(fake)["logits"]  # the critic after its step
        g_loss = torch.nn.functional.softplus(-logits).mean()  # the non-saturating loss (Goodfellow et al. 2014)
        self.expected.append(torch.autograd.grad(g_loss, list(self.generator.parameters())))
        return super().generator_loss(real, y)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.got.append([p.grad.clone() for p in self.generator.parameters()])


def test_reuse_fakes_scores_the_critic_steps_fakes_with_the_stepped_critic(tmp_path):
    cfg = make_cfg(tmp_path, "data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=3",
                   "model.reuse_fakes=true", "model._target_=tests.test_module.Reusing")
    Reusing.expected, Reusing.got = [], []
    train(cfg)
    assert len(Reusing.expected) == len(Reusing.got) == 3
    for want, got in zip(Reusing.expected, Reusing.got):
        for w, g in zip(want, got):
            torch.testing.assert_close(g, w)


class Counting(GANModule):
    """Counts G's forwards in training mode (sample grids run G in eval mode)."""

    calls = 0

    def on_train_start(self):
        super().on_train_start()

        def count(g, *_):
            Counting.calls += g.training

        self.generator.register_forward_hook(count)


def generator_calls(tmp_path, *overrides) -> int:
    cfg = make_cfg(tmp_path, "data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=4", *overrides,
                   "model._target_=tests.test_module.Counting")
    Counting.calls = 0
    train(cfg)
    return Counting.calls


def test_reuse_fakes_runs_g_forward_once_per_iteration(tmp_path):
    assert generator_calls(tmp_path / "a") == 8  # a critic step and a generator step, each drawing its fakes
    assert generator_calls(tmp_path / "b", "model.reuse_fakes=true") == 4
    # WGAN-GP: five critic steps per iteration, the last one's fakes scored by G's step
    assert generator_calls(tmp_path / "c", "model=wgan_gp", "model.reuse_fakes=true") == 4 * 5
    assert generator_calls(tmp_path / "d", "model=wgan_gp") == 4 * 6
