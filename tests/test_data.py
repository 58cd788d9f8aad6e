"""Data: the idx reader on files in the real format, the on-device batches, the toy mixtures."""
import numpy as np
import pytest
import torch

import pickle

from ganlab.data.cifar10 import Cifar10, read_cifar_batch
from ganlab.data.idx import IdxImages, read_idx
from ganlab.data.stacked import Stacked
from ganlab.data.toy import Gauss1d, Grid, Ring, SwissRoll

from .conftest import write_idx


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, a, gz=gz)
    np.testing.assert_array_equal(read_idx(path), a)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    write_idx(tmp_path / "a", np.zeros((4, 5), np.uint8))
    (tmp_path / "b").write_bytes((tmp_path / "a").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"\x89PNG not an idx file")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "c")


def test_idx_images_load_resize_and_labels(idx_root):
    dm = IdxImages(root=str(idx_root), batch_size=16, size=32)
    dm.setup()
    assert dm.x.shape == (256, 1, 32, 32) and dm.x.min() >= -1 and dm.x.max() <= 1
    assert dm.y.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    x, y = dm.batch(0, torch.Generator(), rank=0, world=1)
    assert x.shape == (16, 1, 32, 32) and y.shape == (16,)
    test = IdxImages(root=str(idx_root), size=28, split="t10k")  # uncompressed files are read too
    test.setup()
    assert test.x.shape == (64, 1, 28, 28)


def test_idx_batches_are_a_function_of_the_step_and_cover_each_epoch(idx_root):
    dm = IdxImages(root=str(idx_root), batch_size=32, size=28)
    dm.setup()
    g = torch.Generator()
    epoch = [dm.batch(k, g, 0, 1)[1] for k in range(8)]  # 8 batches of 32 = one epoch of 256
    seen = torch.cat([y for y in epoch])
    assert torch.equal(torch.bincount(seen), torch.bincount(dm.y))  # every image once per epoch
    again = IdxImages(root=str(idx_root), batch_size=32, size=28)
    again.setup()
    assert torch.equal(again.batch(5, torch.Generator(), 0, 1)[1], epoch[5])  # reproducible by index
    assert not torch.equal(dm.batch(8, g, 0, 1)[1], epoch[0])  # next epoch: new order
    half = IdxImages(root=str(idx_root), batch_size=16, size=28)
    half.setup()
    for k in (0, 9):  # 2 ranks with batch 16: blocks of the 1-rank batch of 32, in this epoch and the next
        blocks = [half.batch(k, g, r, 2)[0] for r in (0, 1)]
        assert torch.equal(torch.cat(blocks), dm.batch(k, g, 0, 1)[0])


def test_missing_idx_files_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[\.gz\].*apt-get install"):
        IdxImages(root=str(tmp_path), hint="apt-get install dataset-fashion-mnist")


@pytest.mark.parametrize("dm, k", [(Ring(batch_size=8), 8), (Grid(batch_size=8), 25)])
def test_mixtures_sample_near_their_modes(dm, k):
    x = dm.real(20_000)
    assert dm.modes.shape == (k, 2) and x.shape == (20_000, 2)
    dist, nearest = torch.cdist(x, dm.modes).min(1)
    assert (dist < 4 * dm.std).float().mean() > 0.99
    counts = torch.bincount(nearest, minlength=k).float()
    assert counts.min() > 0.8 * counts.mean()  # equal weights


def test_toy_batches_depend_on_index_and_rank_only():
    dm = Grid(batch_size=64, seed=3)
    g = torch.Generator()
    a, b = dm.batch(7, g, 0, 1)[0], dm.batch(7, torch.Generator(), 0, 1)[0]
    assert torch.equal(a, b) and not torch.equal(a, dm.batch(8, g, 0, 1)[0])
    blocks = [Grid(batch_size=32, seed=3).batch(7, g, r, 2)[0] for r in (0, 1)]  # 2 ranks with batch 32
    assert torch.equal(torch.cat(blocks), a) and not torch.equal(*blocks)  # = the 1-rank batch of 64, split


def test_gauss1d_and_swissroll():
    x = Gauss1d(mu=2.0, sigma=0.5, batch_size=8).real(100_000)
    assert x.shape == (100_000, 1)
    assert x.mean().item() == pytest.approx(2.0, abs=0.01) and x.std().item() == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        Gauss1d(sigma=0.0, batch_size=8)
    roll = SwissRoll(batch_size=8).real(1000)
    assert roll.shape == (1000, 2) and roll.abs().max() < 3


def test_cifar10_batches_load_in_channel_order(cifar_root):
    dm = Cifar10(root=str(cifar_root), batch_size=10)
    dm.setup()
    assert dm.x.shape == (100, 3, 32, 32) and dm.y.shape == (100,)
    c = dm.y[0].item() % 3  # the bright square sits in channel c: the RGB planes were not mixed up
    assert dm.x[0, c, 16, 16] > 0.7 and all(dm.x[0, o, 16, 16] < -0.4 for o in {0, 1, 2} - {c})
    test = Cifar10(root=str(cifar_root), split="test", size=64)
    test.setup()
    assert test.x.shape == (20, 3, 64, 64)


def test_cifar10_refuses_code_in_the_pickle_and_names_missing_files(tmp_path, cifar_root):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load \w+\.print"):
        read_cifar_batch(bad)
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1.*data\.root"):
        Cifar10(root=str(tmp_path))


def test_stacked_draws_three_independent_channels(idx_root):
    dm = Stacked(root=str(idx_root), batch_size=64, size=28)
    dm.setup()
    x, y = dm.batch(0, torch.Generator(), 0, 1)
    assert dm.shape == (3, 28, 28) and x.shape == (64, 3, 28, 28) and y.max() < 1000
    digits = torch.stack([y // 100, y // 10 % 10, y % 10])  # (3, B) class of each channel
    assert not torch.equal(digits[0], digits[1]) and not torch.equal(digits[1], digits[2])
    for ch in range(3):  # each channel is the image whose class the label names
        side = 4 + 2 * digits[ch]  # the fixture's square of class c spans 4 + 2c pixels from (4, 4)
        inside = x[torch.arange(64), ch, 4 + side - 1, 4 + side - 1]
        assert (inside > 0.5).all()
    again = Stacked(root=str(idx_root), batch_size=64, size=28)
    again.setup()
    assert torch.equal(again.batch(0, torch.Generator(), 0, 1)[1], y)
