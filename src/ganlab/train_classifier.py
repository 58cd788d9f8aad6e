"""`python train_classifier.py data=fashion_mnist [epochs=3]`: train the domain classifier of a labelled image
set (metrics/classifier.py) on its training split, report its test accuracy, save it to the cache where the
metrics find it (ClassifierFeatures: the cache file is named after the data set's folder)."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from .config import ConfigError, build, check_finite, check_ranges
from .images import to_uint8
from .metrics.classifier import Classifier, classifier_path
from .train import CONF_DIR


@torch.no_grad()
def accuracy(net: Classifier, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    hits = sum((net(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
               for i in range(0, len(x), batch_size))
    return hits / len(x)


# the accuracy on all 60,000 Fashion-MNIST training images cost ~20 s of make classifier's ~2.4 min on 2 cores
TRAIN_ACC_N = 10_000


# conf/classifier.yaml's own settings: (key, lowest value, whether the value must exceed it, the fix)
RANGES = [("seed", 0, False, "e.g. seed=0"), ("epochs", 1, False, "e.g. epochs=3"),
          ("batch_size", 1, False, "e.g. batch_size=128"), ("lr", 0, True, "the one-cycle schedule's peak, e.g. lr=3e-3")]


def train_classifier(cfg: DictConfig) -> dict[str, float]:
    check_finite(cfg)  # before the data are read
    check_ranges(cfg, RANGES, ("seed", "epochs", "batch_size"))
    torch.manual_seed(cfg.seed)
    train_set = build(cfg.data, "data")
    if not hasattr(train_set, "TEST_SPLIT") or train_set.num_classes is None:
        raise ConfigError(f"data: the domain classifier trains on a labelled set with a test split held on the "
                          f"device (fashion_mnist, mnist, cifar10, stacked), not {type(train_set).__name__}")
    test_set = build(cfg.data, "data", split=train_set.TEST_SPLIT)
    for dm in (train_set, test_set):
        dm.setup()
    out = Path(cfg.out).expanduser() if cfg.out else classifier_path(train_set.root)
    if cfg.if_missing and out.is_file():
        print(f"{out} exists: nothing to do (if_missing=true)")
        return {}
    x, y = to_uint8(train_set.x), train_set.y  # (N, C, S, S) uint8 (stacked data: its grey images), (N,)
    net = Classifier(channels=x.shape[1], size=x.shape[-1], classes=train_set.num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps = cfg.epochs * (len(x) // cfg.batch_size)
    if steps == 0:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the {len(x)} training images: lower it")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    g = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(len(x) // cfg.batch_size):
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss.item():.3f}", flush=True)
    seen = min(len(x), TRAIN_ACC_N)  # the training images' accuracy, against overfitting: a sample is enough
    result = {"train_acc": accuracy(net, x[:seen], y[:seen]),
              "test_acc": accuracy(net, to_uint8(test_set.x), test_set.y)}
    net.save(out)
    print(f"test accuracy {result['test_acc']:.4f} (train {result['train_acc']:.4f}, first {seen} images); saved {out}")
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="classifier")
def main(cfg: DictConfig) -> None:
    try:
        train_classifier(cfg)
    except ConfigError as e:
        sys.exit(f"ganlab: config error: {e}")
