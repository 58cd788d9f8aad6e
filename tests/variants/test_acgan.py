"""AC-GAN: the auxiliary classifier head on D's trunk and the class terms of both losses."""
import math

import pytest
import torch
import torch.nn.functional as F

from ganlab.train import train

from ..conftest import make_cfg, read_metrics


def test_the_class_terms_add_cross_entropies_to_both_losses(tmp_path, idx_root):
    cfg = make_cfg(tmp_path, "model=acgan", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8",
                   "model.class_weight=2.0")
    from ganlab.config import build
    from ganlab.train import build_module

    dm = build(cfg.data, "data", seed=0)
    module = build_module(cfg, dm)
    assert module.generator.num_classes == 10 and module.discriminator.num_classes == 0
    real = {"logits": torch.zeros(4), "classes": torch.zeros(4, 10)}  # uniform class guesses: CE = log 10
    fake = {"logits": torch.zeros(4), "classes": torch.zeros(4, 10)}
    latent = module.latent(4, torch.tensor([1, 2, 3, 4]))
    loss, logs = module.d_objective(real, fake, torch.tensor([1, 2, 3, 4]), latent)
    adversarial = 2 * F.softplus(torch.tensor(0.0))  # NS loss at logits 0: 2 log 2
    assert loss.item() == pytest.approx(adversarial.item() + 2.0 * 2 * math.log(10), rel=1e-5)
    assert logs["train/d_class_real"].item() == pytest.approx(math.log(10), rel=1e-5)
    g_loss, g_logs = module.g_objective(fake, torch.zeros(4, 1, 32, 32), None, latent)
    assert g_loss.item() == pytest.approx(math.log(2) + 2.0 * math.log(10), rel=1e-5)


def test_the_class_head_trains_with_the_critic(tmp_path, idx_root):
    train(make_cfg(tmp_path, "model=acgan", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8",
                   "data.batch_size=16", "iterations=30"))
    real_ce = [r["train/d_class_real"] for r in read_metrics(tmp_path) if "train/d_class_real" in r]
    assert real_ce[-1] < 0.8 * real_ce[0], real_ce  # the fixture's classes (square sizes) are easy
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert any(k.startswith("discriminator.heads.classes.") for k in ckpt["state_dict"])
