"""Shapes and flags of the architectures, at every supported resolution."""
import pytest
import torch
from torch import nn

from ganlab.config import ConfigError
from ganlab.nets import dcgan, identity, mlp
from ganlab.resize import resize, unresize
from ganlab.train import train
from .conftest import make_cfg


@pytest.mark.parametrize("size", dcgan.SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    g = dcgan.Generator((channels, size, size), z_dim=16, ch=8)
    d = dcgan.Discriminator((channels, size, size), ch=8)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, channels, size, size) and x.abs().max() <= 1
    out = d(x)
    assert out["logits"].shape == (2,) and out["features"].shape[0] == 2


def test_dcgan_rejects_unsupported_size():
    with pytest.raises(ValueError, match="supports image sizes"):
        dcgan.Generator((1, 48, 48))


@pytest.mark.parametrize("autocast", [False, True])
def test_a_native_generator_makes_enlarged_native_images(autocast):
    """A native side of 28 at 32x32: every sample is a 28x28 image in [-1, 1] enlarged as the data module enlarges
    real ones (so unresize gives its pixels back exactly), also under bf16 autocast; gradients reach every layer."""
    torch.manual_seed(0)
    g = dcgan.Generator((1, 32, 32), z_dim=16, ch=8, native=True, native_side=28)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        x = g(torch.randn(4, 16))  # (4, 1, 32, 32)
    small = unresize(x, 28)  # (4, 1, 28, 28)
    assert x.dtype == torch.float32 and small.abs().max() <= 1
    torch.testing.assert_close(resize(small, 32), x, atol=1e-6, rtol=0)
    dcgan.Generator((1, 32, 32), z_dim=16, ch=8).load_state_dict(g.state_dict())  # no parameters of its own
    x.float().square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


def test_a_plain_generator_leaves_what_no_enlargement_makes():
    """Without net.g.native a 32x32 sample holds a part no 28 -> 32 enlargement makes (the critic can read it,
    and unresize drops it): what a native side removes."""
    torch.manual_seed(0)
    x = dcgan.Generator((1, 32, 32), z_dim=16, ch=8)(torch.randn(4, 16))  # (4, 1, 32, 32)
    assert (resize(unresize(x, 28), 32) - x).abs().max() > 1e-3


@pytest.mark.parametrize("native", [32, 40, 0])
def test_a_native_side_not_below_the_image_side_is_refused(native):
    with pytest.raises(ValueError, match=rf"a native side of {native} must lie below the image side 32"):
        dcgan.Generator((1, 32, 32), native=True, native_side=native)


@pytest.mark.parametrize("overrides, native", [([], 28), (["data.size=28"], None), (["net.g.native=false"], None),
                                               (["data=cifar10", "data.size=64"], 32)])
def test_net_g_native_takes_the_side_of_the_data_modules_files(tmp_path, idx_root, cifar_root, overrides, native):
    """net.g.native=true gives G the files' side where the data module enlarged them (28 at data.size=32), and
    nothing where it did not."""
    from ganlab.data.cifar10 import Cifar10
    from ganlab.data.idx import IdxImages
    from ganlab.train import build_module

    cfg = make_cfg(tmp_path, "model=dcgan_fast", f"data.root={idx_root}", *overrides)
    dm = Cifar10(cifar_root, size=64) if "data=cifar10" in overrides else IdxImages(idx_root, size=cfg.data.size)
    assert build_module(cfg, dm).generator.native == native


def test_net_g_native_is_refused_unless_true_or_false(tmp_path, idx_root):
    with pytest.raises(ConfigError, match=r"^net\.g\.native must be true or false, got 28: e\.g\. "
                                          r"net\.g\.native=false$"):
        train(make_cfg(tmp_path, f"data.root={idx_root}", "net.g.native=28", "iterations=2"))
    assert not (tmp_path / "checkpoints").exists()


def test_a_checkpoint_whose_net_g_native_is_not_true_or_false_is_refused(tmp_path, idx_root):
    """A development build spelled the switch net.g.native=28 and stored no native_side: today's G would read 28 as
    true without a side and silently build the plain G, so loading such a checkpoint is refused instead."""
    from ganlab.sampling import load_generator

    train(make_cfg(tmp_path, f"data.root={idx_root}", "model=dcgan_fast", "net.g.ch=8", "net.d.ch=8",
                   "data.batch_size=16", "iterations=1", "metrics=none"))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert load_generator(tmp_path / "checkpoints" / "last.ckpt")[0].native == 28
    state["config"]["net"]["g"]["native"] = 28
    del state["native_side"]
    torch.save(state, tmp_path / "old.ckpt")
    with pytest.raises(ConfigError, match=r"^ckpt: .*old\.ckpt was written with a config this ganlab reads otherwise "
                                          r"\(net\.g\.native must be true or false, got 28"):
        load_generator(tmp_path / "old.ckpt")


def full_resolution_outputs(net: nn.Module, x, side: int) -> list[tuple[str, int, int]]:
    """(layer type, in channels, out channels) of each conv of `net` whose output is side x side, on input x."""
    found = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.register_forward_hook(lambda m, _, out: found.append((type(m).__name__, m.in_channels, m.out_channels))
                                    if out.shape[-1] == side else None)
    net(x)
    return found


@pytest.mark.parametrize("native", [False, True])
def test_dcgan_full_resolution_tail_and_stem(native):
    side = {"native": True, "native_side": 28} if native else {}
    g = dcgan.Generator((1, 32, 32), z_dim=16, ch=8, tail=4, **side)
    z = torch.randn(3, 16)
    # G: its last stride-2 transposed conv ends in 4 channels at 32 x 32, a 3x3 conv makes the image from them
    assert full_resolution_outputs(g, z, 32) == [("ConvTranspose2d", 8, 4), ("Conv2d", 4, 1)]
    assert isinstance(g.net[-3], nn.BatchNorm2d) and g.net[-1].kernel_size == (3, 3)
    x = g(z)
    assert x.shape == (3, 1, 32, 32) and x.abs().max() <= 1
    if native:  # still an enlarged 28 x 28 image
        torch.testing.assert_close(resize(unresize(x, 28), 32), x, atol=1e-5, rtol=0)
    d = dcgan.Discriminator((1, 32, 32), ch=8, norm="layer", stem=5)
    assert full_resolution_outputs(d, x, 32) == [("Conv2d", 1, 5)]  # a stride-1 conv reads the grid first
    assert d.trunk[2].in_channels == 5 and d(x)["logits"].shape == (3,)
    # 0 (the default) is the paper's nets: the same layers, so checkpoints keep their weights' names
    assert list(dcgan.Generator((1, 32, 32), tail=0).state_dict()) == list(dcgan.Generator((1, 32, 32)).state_dict())
    assert full_resolution_outputs(dcgan.Discriminator((1, 32, 32), ch=8), x, 32) == []


def test_dcgan_tail_and_stem_are_refused_below_zero(tmp_path, idx_root):
    for key in ("net.g.tail", "net.d.stem"):
        with pytest.raises(ConfigError, match=rf"{key} must be >= 0, got -1"):
            train(make_cfg(tmp_path, f"data.root={idx_root}", f"{key}=-1", "iterations=1"))


@pytest.mark.parametrize("norm, kind", [("batch", nn.BatchNorm2d), ("layer", nn.GroupNorm), ("none", None)])
def test_dcgan_critic_norm_choice(norm, kind):
    d = dcgan.Discriminator((1, 32, 32), ch=8, norm=norm)
    norms = [m for m in d.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert all(isinstance(m, kind) for m in norms) and (len(norms) > 0) == (kind is not None)


@pytest.mark.parametrize("net", [lambda sn: dcgan.Discriminator((1, 32, 32), ch=8, norm="none", spectral_norm=sn),
                                 lambda sn: mlp.Discriminator((2,), hidden=32, spectral_norm=sn)])
def test_spectral_norm_bounds_every_layer(net):
    torch.manual_seed(0)
    d = net(True).train()
    for _ in range(30):  # power iterations converge during training forwards
        d(torch.randn(4, *((1, 32, 32) if isinstance(d, dcgan.Discriminator) else (2,))))
    layers = [m for m in d.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    lin = [m for m in layers if isinstance(m, nn.Linear)]
    for m in lin:  # for a linear layer the normalised weight's top singular value is 1
        assert torch.linalg.matrix_norm(m.weight, ord=2).item() == pytest.approx(1.0, abs=0.05)
    assert not any(hasattr(m, "parametrizations") for m in net(False).modules())


def test_mlp_generator_output_range_by_data_kind():
    assert mlp.Generator((2,), z_dim=4, hidden=8)(torch.randn(3, 4)).shape == (3, 2)
    img = mlp.Generator((1, 8, 8), z_dim=4, hidden=8)(torch.randn(3, 4) * 100)
    assert img.shape == (3, 1, 8, 8) and img.abs().max() <= 1  # tanh for images


def test_identity_generator_has_no_parameters():
    g = identity.Generator((1,))
    z = torch.randn(5, 1)
    assert g.z_dim == 1 and torch.equal(g(z), z) and not list(g.parameters())
