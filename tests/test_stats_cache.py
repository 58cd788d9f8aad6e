"""The real-statistics cache of FID / KID (metrics/fid.py): a file is shared only by runs whose real images are
the same (stats_key of every image set)."""
import shutil

import pytest
import torch

from ganlab.data.celeba import CelebA
from ganlab.data.cifar10 import Cifar10
from ganlab.data.class_pair import ClassPair
from ganlab.data.folder import ImageFolder
from ganlab.data.idx import IdxImages
from ganlab.data.stacked import Stacked
from ganlab.data.unpaired import UnpairedFolders
from ganlab.metrics.classifier import Classifier
from ganlab.metrics.suite import Suite


@pytest.fixture
def classifier(tmp_path) -> str:
    """A real (untrained) domain classifier file: a cheap feature network with a name, as the metrics load it."""
    path = tmp_path / "clf.pt"
    Classifier(channels=1, size=32, width=4).save(path)
    return str(path)


def image_sets(idx_root, cifar_root, celeba_root, folder_root, unpaired_root):
    """Every image datamodule under settings that may change its real(n): seed, size, split, channels."""
    for seed in (0, 1):
        for size in (16, 24):
            yield from (IdxImages(str(idx_root), size=size, seed=seed),
                        IdxImages(str(idx_root), size=size, seed=seed, split="t10k"),
                        Stacked(str(idx_root), size=size, seed=seed),
                        Cifar10(str(cifar_root), size=size, seed=seed),
                        Cifar10(str(cifar_root), size=size, seed=seed, split="test"),
                        CelebA(str(celeba_root), size=size, seed=seed, num_workers=0),
                        CelebA(str(celeba_root), size=size, seed=seed, num_workers=0, split="all"),
                        ImageFolder(str(folder_root), size=size, seed=seed, num_workers=0),
                        ImageFolder(str(folder_root), size=size, channels=1, seed=seed, num_workers=0),
                        ClassPair(str(idx_root), size=size, seed=seed, batch_size=8),
                        ClassPair(str(idx_root), size=size, seed=seed, b=3, batch_size=8),
                        UnpairedFolders(str(unpaired_root), size=size, seed=seed, num_workers=0))


def test_one_cache_key_always_means_the_same_real_images(tmp_path, idx_root, cifar_root, celeba_root, folder_root):
    unpaired = tmp_path / "unpaired"
    shutil.copytree(folder_root / "cats", unpaired / "trainA")
    shutil.copytree(folder_root / "dogs", unpaired / "trainB")
    seen: dict[str, torch.Tensor] = {}  # key -> real(n)
    for dm in image_sets(idx_root, cifar_root, celeba_root, folder_root, unpaired):
        for n in (4, 6):
            key, real = dm.stats_key(n), dm.real(n)
            assert torch.equal(seen.setdefault(key, real), real), f"{key} names two different real sets"
    assert len(seen) == 72  # 12 sets x 2 sizes x 2 n, and again for the 6 whose real(n) depends on the seed
    stacked = [Stacked(str(idx_root), size=16, seed=s) for s in (0, 1)]
    assert stacked[0].stats_key(4) != stacked[1].stats_key(4)  # random triples: a cache file per seed
    assert IdxImages(str(idx_root), seed=0).stats_key(4) == IdxImages(str(idx_root), seed=1).stats_key(4)  # shared


def test_the_same_settings_hit_the_cache_and_others_miss_it(tmp_path, idx_root, classifier, monkeypatch):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))

    def real(seed=0, n=32, size=32):
        """(embeddings computed, real features) of a fresh Suite on stacked data."""
        suite = Suite(Stacked(str(idx_root), size=size, seed=seed), n=n, features="classifier", classifier=classifier)
        feats = suite.real()
        return suite.real_features.computed, feats

    first = real()
    assert first[0] == 1
    again = real()
    assert again[0] == 0 and torch.equal(again[1], first[1])  # read back, nothing embedded
    other_seed = real(seed=1)
    assert other_seed[0] == 1 and not torch.equal(other_seed[1], first[1])
    assert real(n=16)[0] == 1 and real(size=16)[0] == 1
    assert len(list((tmp_path / "cache" / "stats").iterdir())) == 4
