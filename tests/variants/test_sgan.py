"""Semi-supervised GAN: the labelled subset of the on-device image sets, the K+1-class logit algebra on hand
values, the labelled minibatches as a function of the step (exact resume), and - on real Fashion-MNIST with 10
labelled images per class - the SGAN's critic classifying the test split better than a classifier of the same
architecture trained on the labelled images alone for as many steps."""
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from ganlab.config import ConfigError, build
from ganlab.data.cifar10 import Cifar10
from ganlab.data.idx import IdxImages
from ganlab.data.images import UNLABELLED
from ganlab.data.stacked import Stacked
from ganlab.train import build_module, train
from ganlab.variants.sgan import real_logit

from ..conftest import make_cfg, read_metrics


def small(tmp_path, idx_root, *overrides):
    return make_cfg(tmp_path, "model=sgan", f"data.root={idx_root}", "data.labelled=3", "net.g.ch=8", "net.d.ch=8",
                    "data.batch_size=16", "model.labelled_batch=8", *overrides)


def attached(cfg):
    """The module train.py builds, holding the data's labelled subset and test split as fit() would give it."""
    dm = build(cfg.data, "data", seed=cfg.seed)
    module = build_module(cfg, dm)
    module.attach(dm)
    return module, dm


# ---- the labelled subset ----------------------------------------------------------------------------------
def test_labelled_subset_keeps_n_per_class_fixed_by_the_seed_and_batches_read_minus_one_elsewhere(idx_root):
    dm = IdxImages(root=str(idx_root), batch_size=32, size=28, labelled=3)
    x_l, y_l = dm.labelled_subset()
    assert x_l.shape == (30, 1, 28, 28) and torch.equal(torch.bincount(y_l), torch.full((10,), 3))
    assert torch.equal(x_l, dm.x[dm.kept]) and torch.equal(y_l, dm.y[dm.kept])
    # an epoch of batches holds every image once: the kept ones with their labels, the others with -1
    g = torch.Generator()
    ys = torch.cat([dm.batch(k, g, 0, 1)[1] for k in range(8)])  # 8 x 32 = 256 images
    assert (ys == UNLABELLED).sum() == 256 - 30 and torch.equal(torch.bincount(ys[ys >= 0]), torch.full((10,), 3))
    assert torch.equal((dm.y_seen != UNLABELLED).nonzero().flatten(), dm.kept.sort().values)  # labels kept there only
    assert torch.equal(dm.y_seen[dm.kept], dm.y[dm.kept])
    # the same seed keeps the same images (every rank, every run); another seed others; more keeps a superset
    assert torch.equal(IdxImages(root=str(idx_root), size=28, labelled=3).kept, dm.kept)
    assert not torch.equal(IdxImages(root=str(idx_root), size=28, labelled=3, seed=1).kept, dm.kept)
    assert set(dm.kept.tolist()) < set(IdxImages(root=str(idx_root), size=28, labelled=5).kept.tolist())
    # null keeps every label
    full = IdxImages(root=str(idx_root), size=28)
    assert torch.equal(full.labelled_subset()[1], full.y) and (full.batch(0, g, 0, 1)[1] >= 0).all()


@pytest.mark.parametrize("labelled, message", [(0, "data.labelled must be a whole number >= 1"),
                                               (-2, "data.labelled must be a whole number >= 1"),
                                               (2.5, "data.labelled must be a whole number >= 1"),
                                               (True, "data.labelled must be a whole number >= 1"),
                                               (26, "data.labelled=26 labelled images per class is more than "
                                                    "class 6 has \\(25 images\\)")])
def test_bad_labelled_counts_are_refused_naming_the_key(idx_root, labelled, message):
    with pytest.raises(ValueError, match=message):
        IdxImages(root=str(idx_root), size=28, labelled=labelled)


def test_bad_labelled_counts_fail_before_training_as_config_errors(tmp_path, idx_root, cifar_root):
    with pytest.raises(ConfigError, match="^data.labelled=99 labelled images per class is more than"):
        train(small(tmp_path, idx_root, "data.labelled=99"))
    with pytest.raises(ConfigError, match="^data.labelled=50 labelled images per class is more than class"):
        train(make_cfg(tmp_path, "model=sgan", "data=cifar10", f"data.root={cifar_root}", "data.labelled=50"))
    with pytest.raises(ConfigError, match="needs the label of every image, but data.labelled=2 keeps only some"):
        train(make_cfg(tmp_path, "model=acgan", f"data.root={idx_root}", "data.labelled=2"))
    with pytest.raises(ValueError, match="data.labelled=2: stacked data has no fixed images"):
        Stacked(root=str(idx_root), labelled=2)
    with pytest.raises(ValueError, match="needs a labelled subset"):  # stacked data: every label, none fixed
        train(make_cfg(tmp_path, "model=sgan", "data=stacked", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8"))


def test_the_test_split_is_the_held_out_images_at_the_training_size(idx_root, cifar_root):
    dm = IdxImages(root=str(idx_root), size=32, labelled=3)
    x, y = dm.test_split()
    assert x.shape == (64, 1, 32, 32) and y.tolist() == [i % 10 for i in range(64)]  # every label, t10k files
    assert x.min() >= -1 and x.max() <= 1
    cifar = Cifar10(root=str(cifar_root), size=32)
    x, y = cifar.test_split()
    assert x.shape == (20, 3, 32, 32) and len(cifar.labelled_subset()[1]) == 100  # train: 5 batches of 20


# ---- the K+1 classes --------------------------------------------------------------------------------------
def test_the_fake_class_logit_fixed_at_zero_on_hand_values(tmp_path, idx_root):
    # K = 2, l = (0, log 3): Z = 1 + 3 = 4, D(x) = Z / (Z + 1) = 0.8, p(class 1 | x, real) = 3/4
    assert real_logit(torch.tensor([[0.0, math.log(3.0)]])).item() == pytest.approx(math.log(4.0), abs=1e-6)
    assert torch.sigmoid(real_logit(torch.tensor([[0.0, math.log(3.0)]]))).item() == pytest.approx(0.8, abs=1e-6)

    cfg = small(tmp_path, idx_root, "model.unsup_weight=0.25")
    module, dm = attached(cfg)
    head = module.discriminator.heads["classes"]
    with torch.no_grad():  # every image gets the class logits l = (0, log 3, 0, ..., 0): Z = 12, D = 12/13
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, math.log(3.0)] + [0.0] * 8))
    real, fake = module.critic(dm.x[:4]), module.critic(module.generator(*module.latent(4, None)))
    assert real["logits"].tolist() == pytest.approx([math.log(12.0)] * 4, abs=1e-5)
    module.y_l = torch.ones_like(module.y_l)  # every labelled image of class 1: -log p(1 | x, real) = log 4
    loss, logs = module.d_objective(real, fake, None, module.latent(4, None))
    unsup = -math.log(12 / 13) - math.log(1 - 12 / 13)  # -log D(x) - log(1 - D(G(z)))
    assert logs["train/d_sup"].item() == pytest.approx(math.log(4.0), abs=1e-5)
    assert logs["train/d_unsup"].item() == pytest.approx(unsup, abs=1e-5)
    assert loss.item() == pytest.approx(math.log(4.0) + 0.25 * unsup, abs=1e-5)


@pytest.mark.parametrize("override, message", [("model.labelled_batch=0", "model.labelled_batch must be >= 1"),
                                               ("model.unsup_weight=-1", "model.unsup_weight must be >= 0"),
                                               ("model.eval_every=0", "model.eval_every must be >= 1"),
                                               ("model.pack=2", "model.pack=2: the semi-supervised critic")])
def test_bad_model_settings_name_the_key(tmp_path, idx_root, override, message):
    with pytest.raises(ConfigError, match=message):
        train(small(tmp_path, idx_root, override))


# ---- the labelled minibatches -----------------------------------------------------------------------------
def test_labelled_minibatches_are_a_function_of_the_step(tmp_path, idx_root):
    module, _ = attached(small(tmp_path, idx_root, "model.labelled_batch=12"))
    first = [module.labelled_batch(s)[1] for s in range(5)]  # 5 x 12 = 60 = two passes over the 30 images
    assert torch.equal(torch.bincount(torch.cat(first)), torch.full((10,), 6))  # every image twice
    again, _ = attached(small(tmp_path, idx_root, "model.labelled_batch=12"))
    for s in (4, 0, 2):  # any order: batch s depends on s alone
        assert torch.equal(again.labelled_batch(s)[0], module.labelled_batch(s)[0])
    assert not torch.equal(first[0], torch.cat(first)[30:42])  # the second pass has its own order


def test_under_ddp_each_rank_takes_its_block_of_the_one_process_sequence(tmp_path, idx_root):
    """Rank r of w at critic step s reads what one process reads at step s * w + r (the rank and world size come
    from GANModule.ranks), so the ranks see different labelled images and together the one-process sequence."""
    from ganlab.ranks import Ranks
    module, _ = attached(small(tmp_path, idx_root, "model.labelled_batch=12"))
    alone = [module.labelled_batch(s) for s in range(6)]
    for rank in (0, 1):
        module.ranks = Ranks(rank, 2)  # what setup takes from the trainer under DDP
        for s in range(3):
            x, y = module.labelled_batch(s)
            assert torch.equal(x, alone[2 * s + rank][0]) and torch.equal(y, alone[2 * s + rank][1])


def test_resume_draws_the_same_labelled_batches_and_logs_test_accuracy(tmp_path, idx_root):
    overrides = ["iterations=10", "model.eval_every=4", "callbacks.checkpoint.every=5", "callbacks.checkpoint.keep=true"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train(small(full, idx_root, *overrides))
    train(small(resumed, idx_root, *overrides, f"ckpt_path={full}/checkpoints/iter_0000005.ckpt"))
    keys = ("train/d_sup", "train/d_unsup", "train/g_loss", "val/accuracy")
    rows = {run: {(int(r["step"]), k): r[k] for r in read_metrics(run) for k in keys if k in r} for run in (full, resumed)}
    assert sorted(s for s, k in rows[full] if k == "val/accuracy") == [4, 8, 10]  # every eval_every and at the end
    assert sorted(s for s, k in rows[resumed] if k == "train/d_sup") == list(range(6, 11))
    assert all(rows[full][key] == value for key, value in rows[resumed].items())
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a) and any(k.startswith("discriminator.heads.classes") for k in a)


# ---- learned behaviour ------------------------------------------------------------------------------------
STEPS = 600  # iterations of the SGAN and steps of the classifier alike (half an epoch of the 60k unlabelled images)


@pytest.mark.slow
def test_sgan_beats_a_classifier_of_the_same_critic_trained_on_the_labelled_images_alone(tmp_path):
    """Real Fashion-MNIST, 10 labelled images per class (100 labels), 28 px, narrow DCGAN nets. The SGAN runs in a
    setting closer to Odena (2016) - G by the non-saturating loss on log Z (model.feature_matching=false), L_unsup
    weighted 1, Adam lr 1e-3 - which shows the semi-supervised gain within one epoch; the preset's feature
    matching (Salimans et al.'s best after hundreds of epochs) gains about 1 point here by then. The baseline is
    the SGAN's own critic (same initial weights, same class head) trained by the same Adam on the same labelled
    minibatches, without the unlabelled images and the fakes. Batches of 50 unlabelled and 50 labelled images
    (the preset's 100 and 100 cost twice as much for a like gap). The means of seeds 0, 1, 2 are compared: one
    seed's gap moves with the machine's float rounding. Measured (one thread, 2026-12-07): gaps +0.012, +0.038,
    +0.082 (mean +0.044); with the unsupervised term switched off (model.unsup_weight=0) -0.005, -0.008, -0.013."""
    pairs = [sgan_and_alone(tmp_path / f"seed{seed}", seed) for seed in (0, 1, 2)]
    sgan, alone = (sum(p[i] for p in pairs) / len(pairs) for i in (0, 1))
    print(f"test accuracy after {STEPS} steps, seeds 0-2: {pairs}")
    assert sgan > alone + 0.01, (sgan, alone)  # a broken unsupervised term leaves it at or below the baseline


def sgan_and_alone(tmp_path, seed: int) -> tuple[float, float]:
    """Test accuracy of the SGAN and of its critic trained on the labelled images alone, for one seed."""
    cfg = make_cfg(tmp_path, "model=sgan", "data=fashion_mnist", "data.labelled=10", f"seed={seed}",
                   "data.size=28", "net.g.ch=16", "net.d.ch=16", "data.batch_size=50", "model.labelled_batch=50",
                   f"iterations={STEPS}", f"model.eval_every={STEPS}",
                   "model.feature_matching=false", "model.unsup_weight=1.0", "optim.g.lr=1e-3",
                   f"callbacks.samples.every={STEPS}", f"callbacks.checkpoint.every={STEPS}",
                   f"trainer.log_every_n_steps={STEPS // 6}")
    sgan = train(cfg).metrics["val/accuracy"]

    L.seed_everything(cfg.seed, verbose=False)  # as train() does: the same initial critic
    baseline, _ = attached(cfg)
    critic = baseline.discriminator
    opt = baseline.optim_d(critic.parameters())
    for step in range(STEPS):
        x, y = baseline.labelled_batch(step)
        loss = F.cross_entropy(critic(x)["classes"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return sgan, baseline.accuracy()
