"""Shapes and flags of the architectures, at every supported resolution."""
import pytest
import torch
from torch import nn

from ganlab.nets import dcgan, identity, mlp


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
