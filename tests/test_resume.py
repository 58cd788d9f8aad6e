"""Resuming from a checkpoint continues exactly as the uninterrupted run: losses, weights, EMA, counters."""
import pytest
import torch

from ganlab.train import train

from .conftest import make_cfg, read_metrics

LOSSES = ("train/d_loss", "train/g_loss", "train/gp", "train/wasserstein")


def losses_by_step(out):
    return {int(r["step"]): {k: r[k] for k in LOSSES if k in r} for r in read_metrics(out) if "train/d_loss" in r}


@pytest.mark.parametrize("name", ["toy_wgan_gp_ema", "images_dcgan", "toy_wgan_gp_ema_fast"])
def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, idx_root, name):
    overrides = {
        "toy_wgan_gp_ema": ["data=grid25", "model=wgan_gp", "model.ema_decay=0.9", "net.g.hidden=32",
                            "net.d.hidden=32", "model.lr_decay=linear"],
        "toy_wgan_gp_ema_fast": ["data=grid25", "model=wgan_gp", "model.ema_decay=0.9", "net.g.hidden=32",
                                 "net.d.hidden=32", "model.lr_decay=linear", "trainer.fast=true"],
        "images_dcgan": ["data=fashion_mnist", f"data.root={idx_root}", "model=dcgan", "net.g.ch=8", "net.d.ch=8",
                         "data.batch_size=16", "model.ema_decay=0.9"],
    }[name]
    # 256 images / 16 = 16 batches per epoch: the images run crosses an epoch boundary after the resume point
    overrides += ["iterations=20", "callbacks.checkpoint.every=9", "callbacks.checkpoint.keep=true"]
    full = tmp_path / "full"
    train(make_cfg(full, *overrides))
    resumed = tmp_path / "resumed"
    train(make_cfg(resumed, *overrides, f"ckpt_path={full}/checkpoints/iter_0000009.ckpt"))

    a, b = losses_by_step(full), losses_by_step(resumed)
    start = min(b)
    assert start > min(a) and len(b) == len([s for s in a if s >= start]) > 10
    for step, values in b.items():
        assert values == a[step], f"step {step}: {values} != {a[step]}"

    end_full = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    end_resumed = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert end_full["ganlab_steps"] == end_resumed["ganlab_steps"]
    for k, v in end_full["state_dict"].items():
        assert torch.equal(v, end_resumed["state_dict"][k]), k
    assert any(k.startswith("ema.") for k in end_full["state_dict"])
