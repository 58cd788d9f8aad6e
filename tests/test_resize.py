"""resize.py: the data modules' one resampling, and its least-squares way back (the lucic2018 protocol's
32 -> 28), pinned against torch's interpolate and against the original images."""
import pytest
import torch
import torch.nn.functional as F

from ganlab.data.idx import IdxImages
from ganlab.metrics.published import PUBLISHED
from ganlab.resize import resize, resize_matrix, unresize


@pytest.mark.parametrize("n_in,n_out", [(28, 32), (28, 64), (32, 28), (7, 7)])
def test_resize_is_the_separable_matrix_of_bilinear_antialiased_interpolation(n_in, n_out):
    x = torch.randn(3, 2, n_in, n_in, dtype=torch.float64)
    a = resize_matrix(n_in, n_out)  # (n_out, n_in)
    want = F.interpolate(x, size=(n_out, n_out), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(a @ x @ a.T, want)
    torch.testing.assert_close(resize(x, n_out), want)


@pytest.mark.parametrize("native,side", [(28, 32), (28, 64), (10, 13)])
def test_unresize_gives_an_enlarged_image_back(native, side):
    x = torch.rand(4, 1, native, native) * 2 - 1  # (4, 1, n, n) in [-1, 1]
    big = resize(x, side)
    torch.testing.assert_close(unresize(big, native), x, atol=1e-5, rtol=0)
    blurred = resize(big, native)  # shrinking bilinearly is no inverse: what the protocol did before
    assert (blurred - x).abs().max() > 0.1


def test_unresize_to_a_larger_side_is_resize():
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(unresize(x, 20), resize(x, 20))
    torch.testing.assert_close(unresize(x, 16), x)
    with pytest.raises(ValueError, match="square"):
        unresize(torch.rand(1, 1, 16, 12), 8)


def test_lucic2018_gives_a_32px_training_image_its_28px_file_back(idx_root):
    """The protocol's samples of a generator that reproduced the data module's 32x32 training images exactly
    are the uint8 28x28 images of the data set's files."""
    dm = IdxImages(str(idx_root), size=32)
    files, _ = dm.load("train")  # (256, 1, 28, 28) uint8
    dm.setup()
    assert dm.x.shape[-1] == 32
    assert torch.equal(PUBLISHED["lucic2018"].fake(dm.x), files)
