"""sample.py writes N samples from a checkpoint: float32 (N, D) for toy data, uint8 (N, C, H, W) for images."""
import numpy as np
import pytest
from PIL import Image

from ganlab.sample import load_generator, main
from ganlab.train import train

from .conftest import make_cfg


@pytest.fixture(scope="module")
def toy_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    train(make_cfg(out, "data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=2", "model.ema_decay=0.5"))
    return out / "checkpoints" / "last.ckpt"


def test_toy_samples_npy_and_png(tmp_path, toy_ckpt):
    main([f"ckpt={toy_ckpt}", "n=300", f"out={tmp_path}/s.npy"])
    x = np.load(tmp_path / "s.npy")
    assert x.dtype == np.float32 and x.shape == (300, 2)
    main([f"ckpt={toy_ckpt}", "n=300", f"out={tmp_path}/s.png"])
    assert Image.open(tmp_path / "s.png").size[0] > 100


def test_samples_come_from_the_ema_generator_when_kept(toy_ckpt):
    (ema, _), (raw, _) = load_generator(toy_ckpt, ema=True), load_generator(toy_ckpt, ema=False)
    assert any((a != b).any() for a, b in zip(ema.parameters(), raw.parameters()))


def test_image_samples_are_uint8(tmp_path, idx_root):
    train(make_cfg(tmp_path, f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16",
                   "iterations=1"))
    main([f"ckpt={tmp_path}/checkpoints/last.ckpt", "n=10", f"out={tmp_path}/s.npy"])
    x = np.load(tmp_path / "s.npy")
    assert x.dtype == np.uint8 and x.shape == (10, 1, 32, 32)
    main([f"ckpt={tmp_path}/checkpoints/last.ckpt", "n=16", f"out={tmp_path}/grid.png"])
    assert Image.open(tmp_path / "grid.png").size == (4 * 34 + 2, 4 * 34 + 2)  # 4x4 grid, 2px padding


def test_bad_sample_arguments_exit_with_a_message(tmp_path, toy_ckpt):
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main([f"ckpt={tmp_path}/nope.ckpt"])
    with pytest.raises(SystemExit, match="unknown: bogus"):
        main([f"ckpt={toy_ckpt}", "bogus=1"])
    with pytest.raises(SystemExit, match="out must end in .npy or .png"):
        main([f"ckpt={toy_ckpt}", "out=x.txt"])
