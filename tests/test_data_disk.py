"""On-disk data: CelebA and image folders streamed by DataLoader workers (fixtures in the real formats, JPEGs
and PNGs written with PIL), their batch stream and its resumption, and the opt-in downloads (torchvision's
dataset classes with their network step replaced by writing fixture files where torchvision would)."""
import pickle
import shutil
from itertools import islice
from pathlib import Path

import pytest
import torch
import torchvision.datasets
from omegaconf.errors import MissingMandatoryValue

from ganlab.config import ConfigError
from ganlab.data.celeba import CelebA
from ganlab.data.cifar10 import Cifar10
from ganlab.data.folder import ImageFolder
from ganlab.data.idx import IdxImages, read_idx
from ganlab.data.stream import BatchIndices
from ganlab.train import train

from .conftest import make_cfg, read_metrics, write_celeba, write_idx


def test_celeba_splits_crop_and_range(celeba_root):
    counts = {s: len(CelebA(str(celeba_root), split=s, num_workers=0).files) for s in ("train", "valid", "test", "all")}
    assert counts == {"train": 24, "valid": 8, "test": 8, "all": 40}
    dm = CelebA(str(celeba_root), split="valid", size=32, batch_size=8, num_workers=0)
    assert dm.shape == (3, 32, 32) and dm.num_classes is None
    assert [f.name for f in dm.files] == [f"{i:06d}.jpg" for i in range(25, 33)]
    x, y = next(iter(dm.loader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y is None
    assert x.min() >= -1 and x.max() <= 1
    assert x[:, :, 0].max() < -0.3 and x[:, :, -1].max() < -0.3  # the white bands were cropped away
    assert x[:, :, 16, 16].mean() > -0.3  # the centre square is still there
    assert dm.stats_key(100).startswith("celeba-") and dm.stats_key(100).endswith("-valid-3x32px-n100-of8-seed0")


def test_celeba_reads_torchvisions_layout(tmp_path):
    write_celeba(tmp_path / "celeba")  # what torchvision.datasets.CelebA(tmp_path, download=True) writes
    dm = CelebA(str(tmp_path), split="test", size=16, batch_size=4, num_workers=0)
    assert len(dm.files) == 8 and dm.real(4).shape == (4, 3, 16, 16)


def test_folder_classes_labels_and_sizes(folder_root):
    dm = ImageFolder(str(folder_root), size=16, batch_size=12, num_workers=0)
    assert dm.num_classes == 2 and len(dm.files) == 12 and dm.labels == [0] * 6 + [1] * 6  # cats, dogs by name
    x, y = next(iter(dm.loader()))
    assert x.shape == (12, 3, 16, 16) and y.dtype == torch.long and sorted(y.tolist()) == dm.labels
    red, blue = x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))  # (B,)
    assert torch.equal(y == 0, red > blue)  # each label names the folder its image came from
    grey = ImageFolder(str(folder_root), size=8, channels=1, batch_size=4, num_workers=0)
    assert grey.shape == (1, 8, 8) and next(iter(grey.loader()))[0].shape == (4, 1, 8, 8)


def test_folder_without_two_classes_is_unlabelled(tmp_path, folder_root):
    shutil.copytree(folder_root / "cats", tmp_path / "one" / "cats")  # one class folder
    shutil.copytree(folder_root / "dogs", tmp_path / "loose" / "dogs")  # two, but images beside them
    shutil.copytree(folder_root / "cats", tmp_path / "loose" / "cats")
    shutil.copy(folder_root / "cats" / "0.png", tmp_path / "loose" / "stray.png")
    for path, n in (("one", 6), ("loose", 13)):
        dm = ImageFolder(str(tmp_path / path), size=8, batch_size=4, num_workers=0)
        assert dm.num_classes is None and len(dm.files) == n and next(iter(dm.loader()))[1] is None


def test_missing_or_empty_folders_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nope'}.*data\.path=DIR"):
        ImageFolder(str(tmp_path / "nope"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=rf"no image files .* under {tmp_path / 'docs'}.*data\.path=DIR"):
        ImageFolder(str(tmp_path / "docs"))
    with pytest.raises((ConfigError, MissingMandatoryValue), match=r"data\.path"):  # data=folder alone
        train(make_cfg(tmp_path, "data=folder"))
    with pytest.raises(FileNotFoundError, match=rf"no CelebA in {tmp_path}.*data\.download=true"):
        CelebA(str(tmp_path))


def test_real_is_a_fixed_subset_whatever_the_workers(celeba_root):
    rng = torch.get_rng_state()
    a = CelebA(str(celeba_root), size=16, num_workers=2).real(10)
    assert torch.equal(torch.get_rng_state(), rng)  # metrics calling real() leave training's latents alone
    b = CelebA(str(celeba_root), size=16, num_workers=0).real(10)
    assert a.shape == (10, 3, 16, 16) and torch.equal(a, b)
    assert CelebA(str(celeba_root), size=16, num_workers=0).real(100).shape == (24, 3, 16, 16)  # all there are


def test_batch_indices_cover_each_epoch_and_shard_ranks():
    epoch = list(islice(BatchIndices(24, 8, seed=0), 3))  # 3 batches of 8 = one epoch of 24
    assert sorted(sum(epoch, [])) == list(range(24))
    assert list(islice(BatchIndices(24, 8, seed=0, start=3), 3)) != epoch  # the next epoch: a new order
    ranks = [list(islice(BatchIndices(24, 4, seed=0, rank=r, world=2), 3)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks)] == epoch  # batch k of 2 ranks with 4 = the 1-rank batch of 8, split
    with pytest.raises(ValueError, match="data.batch_size=32 is larger than the 24 images"):
        BatchIndices(24, 32, seed=0)


def test_the_stream_restarts_exactly_at_any_batch_with_workers(celeba_root):
    dm = CelebA(str(celeba_root), size=16, batch_size=8, num_workers=2)  # 3 batches per epoch
    stream = [x for x, _ in islice(dm.loader(), 7)]
    resumed = [x for x, _ in islice(dm.loader(start=4), 3)]  # what a run resumed at consumed=4 sees
    assert all(torch.equal(a, b) for a, b in zip(stream[4:], resumed))
    in_process = [x for x, _ in islice(CelebA(str(celeba_root), size=16, batch_size=8, num_workers=0).loader(), 7)]
    assert all(torch.equal(a, b) for a, b in zip(stream, in_process))  # the workers change nothing
    assert not torch.equal(stream[0], stream[3])  # epoch 2 is another permutation


# --- opt-in downloads: torchvision's classes, their network step replaced by writing fixture files ----------

def fake_idx_download(idx_root):
    def download(self):  # torchvision.datasets.MNIST.download writes (and unpacks) into self.raw_folder
        raw = Path(self.raw_folder)
        raw.mkdir(parents=True, exist_ok=True)
        for split in ("train", "t10k"):
            for kind, d in (("images", 3), ("labels", 1)):
                stem = f"{split}-{kind}-idx{d}-ubyte"
                src = idx_root / stem if (idx_root / stem).exists() else idx_root / f"{stem}.gz"
                write_idx(raw / stem, read_idx(src))
    return download


def fake_cifar_download(cifar_root):
    def download(self):  # CIFAR10.download unpacks cifar-10-batches-py/ into self.root
        shutil.copytree(cifar_root / self.base_folder, Path(self.root) / self.base_folder)
        with open(Path(self.root) / self.base_folder / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f, protocol=2)
    return download


def fake_celeba_download(self):  # CelebA.download fetches into self.root/celeba
    folder = Path(self.root) / self.base_folder
    names = write_celeba(folder)
    (folder / "identity_CelebA.txt").write_text("".join(f"{n} 1\n" for n in names))
    for table in ("list_bbox_celeba.txt", "list_landmarks_align_celeba.txt", "list_attr_celeba.txt"):
        (folder / table).write_text(f"{len(names)}\nvalue\n" + "".join(f"{n} 1\n" for n in names))


@pytest.mark.parametrize("name", ["FashionMNIST", "MNIST", "CIFAR10", "CelebA"])
def test_download_only_when_asked_and_missing(tmp_path, monkeypatch, idx_root, cifar_root, name):
    cls = getattr(torchvision.datasets, name)
    fake = {"FashionMNIST": fake_idx_download(idx_root), "MNIST": fake_idx_download(idx_root),
            "CIFAR10": fake_cifar_download(cifar_root), "CelebA": fake_celeba_download}[name]
    calls = []
    monkeypatch.setattr(cls, "download", lambda self: (calls.append(self.root), fake(self)))
    if name in ("CIFAR10", "CelebA"):  # torchvision checks the md5 of the real files, which fixtures lack
        monkeypatch.setattr(f"{cls.__module__}.check_integrity", lambda *a, **k: True)
    make = {"FashionMNIST": lambda **kw: IdxImages(root=str(tmp_path), source="FashionMNIST", size=28, **kw),
            "MNIST": lambda **kw: IdxImages(root=str(tmp_path), source="MNIST", size=28, **kw),
            "CIFAR10": lambda **kw: Cifar10(root=str(tmp_path), **kw),
            "CelebA": lambda **kw: CelebA(root=str(tmp_path), size=16, num_workers=0, **kw)}[name]

    with pytest.raises(FileNotFoundError, match=r"data\.download=true"):
        make()  # not asked: the clear error, and no download
    dm = make(download=True)
    assert calls == []  # nothing fetched at construction: prepare_data does it (one process per node)
    dm.prepare_data()
    dm.setup()
    assert calls == [str(tmp_path)]
    x = dm.real(8)
    assert x.shape == (8, *dm.shape) and x.min() >= -1 and x.max() <= 1
    again = make(download=True)
    again.prepare_data()
    again.setup()
    assert calls == [str(tmp_path)] and make().real(8).shape == x.shape  # present now: read, not fetched


# --- training through the entry point -----------------------------------------------------------------------

SMALL = ["net.g.ch=8", "net.d.ch=8", "data.size=32", "data.batch_size=8"]


def test_folder_trains(tmp_path, folder_root):
    train(make_cfg(tmp_path, "data=folder", f"data.path={folder_root}", "data.num_workers=0", "iterations=2", *SMALL))
    assert max(r["step"] for r in read_metrics(tmp_path)) == 2
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and list((tmp_path / "samples").glob("iter_*.png"))


def test_celeba_with_workers_resumes_exactly(tmp_path, celeba_root):
    """24 images in batches of 8: iterations 3 and 4 after the resume at 2 are in the next epoch."""
    overrides = ["data=celeba", f"data.root={celeba_root}", "data.num_workers=2", "iterations=4",
                 "callbacks.checkpoint.every=2", "callbacks.checkpoint.keep=true", *SMALL]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train(make_cfg(full, *overrides))
    train(make_cfg(resumed, *overrides, f"ckpt_path={full}/checkpoints/iter_0000002.ckpt"))
    a = {r["step"]: r["train/d_loss"] for r in read_metrics(full) if "train/d_loss" in r}
    b = {r["step"]: r["train/d_loss"] for r in read_metrics(resumed) if "train/d_loss" in r}
    assert sorted(a) == [1, 2, 3, 4] and sorted(b) == [3, 4]
    assert all(b[s] == a[s] for s in b)
    end_a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    end_b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    for k, v in end_a["state_dict"].items():
        assert torch.equal(v, end_b["state_dict"][k]), k
