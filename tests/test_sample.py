"""sample.py writes N samples from a checkpoint: float32 (N, D) for toy data, uint8 (N, C, H, W) for images. The
one sampler behind it (sampling.py) is the one training's metrics and sample grids use."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.config import build
from ganlab.nets import identity, mlp
from ganlab.sample import main
from ganlab.sampling import generate, latents, load_generator
from ganlab.train import build_module, train

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


def test_a_second_sample_file_of_the_same_name_keeps_the_first(tmp_path, toy_ckpt, capsys):
    for n in (300, 7):
        main([f"ckpt={toy_ckpt}", f"n={n}", f"out={tmp_path}/s.npy"])
        main([f"ckpt={toy_ckpt}", f"n={n}", f"out={tmp_path}/s.png"])
    assert np.load(tmp_path / "s.npy").shape == (300, 2) and np.load(tmp_path / "s.1.npy").shape == (7, 2)
    assert Image.open(tmp_path / "s.1.png").format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.1.npy", "s.1.png", "s.npy", "s.png"]  # no temporary
    assert f"to {tmp_path}/s.1.npy" in capsys.readouterr().out


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
    # each was a traceback (int('inf')) or silently taken (n=2.5 as 2, ema=maybe as true)
    for arg, message in [("n=inf", "n must be a whole number, got 'inf'"), ("n=2.5", "n must be a whole number"),
                         ("n=0", "n must be >= 1, got 0"), ("seed=abc", "seed must be a whole number, got 'abc'"),
                         ("seed=-1", "seed must be >= 0"), ("ema=maybe", "ema must be true or false, got 'maybe'")]:
        with pytest.raises(SystemExit, match=f"^ganlab: {message}"):
            main([f"ckpt={toy_ckpt}", arg, f"out={tmp_path}/s.npy"])
    assert not list(tmp_path.glob("s*.npy"))


def test_generate_draws_the_same_latents_for_any_batch_size():
    g = identity.Generator((3,))  # x = z: the samples are the latents
    z = generate(g, 50, seed=3, batch_size=50)  # (50, 3)
    assert torch.equal(z, latents(50, 3, seed=3))
    for batch_size in (1, 7, 16, 1024):  # pieces of the CPU draw would differ where they end off torch's 16-blocks
        assert torch.equal(generate(g, 50, seed=3, batch_size=batch_size), z)
    assert not torch.equal(generate(g, 50, seed=4), z)
    torch.manual_seed(0)
    g = mlp.Generator((2,), z_dim=8, hidden=16).eval()
    x = generate(g, 50, seed=3, batch_size=50)  # (50, 2)
    for batch_size in (7, 16):  # the same latents; G's matmuls may round differently with the batch's size
        torch.testing.assert_close(generate(g, 50, seed=3, batch_size=batch_size), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", ["dcgan", "cgan", "infogan"])  # unconditional, class labels, InfoGAN's codes
@pytest.mark.parametrize("ema", [False, True])
def test_module_sample_is_generate_on_its_generator(tmp_path, idx_root, preset, ema):
    cfg = make_cfg(tmp_path, f"data.root={idx_root}", f"model={preset}", "net.g.ch=8", "net.d.ch=8",
                   *(["model.ema_decay=0.9"] if ema else []))
    module = build_module(cfg, build(cfg.data, "data", seed=0))
    g = module.ema.model if ema else module.generator
    module.generator.train()  # as during training: sample() puts G in eval mode (BatchNorm's running statistics)
    x = module.sample(40, seed=5, batch_size=16)  # (40, 1, 32, 32)
    assert module.generator.training  # and back
    assert torch.equal(x, generate(g.eval(), 40, seed=5, batch_size=16))
    assert not torch.equal(x, generate(g, 40, seed=6, batch_size=16))
    if preset != "dcgan":  # a conditional G is asked for every class in turn
        labels = torch.arange(40) % 10
        assert torch.equal(x, torch.cat([g(latents(40, g.z_dim, 5)[i:i + 16], labels[i:i + 16]) for i in (0, 16, 32)]))
