"""The platform's own domain classifier: a small CNN trained on one labelled data set (train_classifier.py).

It gives cheap FID-style features on a CPU (`features`, 256-d) and class predictions for the class-coverage
metrics of labelled data. Saved as a state dict plus its shape, loadable with weights_only=True, in the metrics cache under a name
derived from the data set's folder (classifier_path), where the metrics find it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.base import source_id
from ..checkpoint_io import write_atomically
from ..resize import resize
from .features import cache_dir, sha1_file


class Classifier(nn.Module):
    def __init__(self, channels: int = 1, size: int = 32, classes: int = 10, width: int = 16):
        super().__init__()
        self.config = {"channels": channels, "size": size, "classes": classes, "width": width}
        c = width  # ~4 M multiply-adds per 32x32 image: three epochs of Fashion-MNIST take minutes on 2 cores
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),  # (N, c, S/2, S/2)
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(2 * c * (size // 4) ** 2, 256), nn.ReLU(),  # (N, 256)
        )
        self.head = nn.Linear(256, classes)

    def prepare(self, x: Tensor) -> Tensor:
        """uint8 (N, C, H, W) -> floats in [-1, 1] at the classifier's size."""
        return resize(x.float().div(127.5).sub(1.0), self.config["size"])  # (N, C, size, size)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(self.prepare(x))  # (N, 256)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (N, classes) logits

    def save(self, path: Path) -> None:
        write_atomically(path, lambda tmp: torch.save({"config": self.config, "state_dict": self.state_dict()}, tmp))

    @classmethod
    def load(cls, path: Path) -> "Classifier":
        if not path.is_file():
            raise FileNotFoundError(f"missing the domain classifier {path}: train it with "
                                    f"`python train_classifier.py data=<the data set>`")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        net = cls(**ckpt["config"])
        net.load_state_dict(ckpt["state_dict"])
        return net.eval().requires_grad_(False)


def classifier_path(root: str | Path) -> Path:
    """Where `python train_classifier.py` saves the classifier of the data set read from `root`."""
    return cache_dir() / f"classifier_{source_id(root)}.pt"


class ClassifierFeatures(nn.Module):
    """FID features (N, 256) and class predictions from a domain classifier. A grey classifier reads each
    channel of an RGB image on its own (stacked data): features concatenate, the label is the class triple
    100 c_R + 10 c_G + c_B. The name holds the file's hash: statistics of another classifier never mix."""

    def __init__(self, path: str | Path):
        super().__init__()
        path = Path(path).expanduser()
        self.net = Classifier.load(path)
        self.name = f"classifier-{sha1_file(path)[:8]}"

    def _per_channel(self, x: Tensor) -> tuple[Tensor, int]:
        c = self.net.config["channels"]
        if x.shape[1] == c:
            return x, 1
        if c != 1:
            raise ValueError(f"the domain classifier reads {c}-channel images, got {x.shape[1]} channels")
        return x.flatten(0, 1)[:, None], x.shape[1]  # (N * C, 1, H, W): one grey image per channel

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        flat, k = self._per_channel(x)
        return self.net.features(flat).reshape(len(x), -1)  # (N, k * 256)

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 500) -> Tensor:
        """Class of each image (N,): with k grey channels the digits of the k-tuple in base `classes`. In batches:
        at once, N = 26,000 stacked images (78,000 grey ones) held a run at 12 GB when the kernel killed it."""
        flat, k = self._per_channel(x)  # (N k, 1, H, W) or (N, C, H, W)
        labels = torch.cat([self.net(flat[i:i + batch_size]).argmax(1)
                            for i in range(0, len(flat), batch_size)]).reshape(len(x), k)  # (N, k)
        base = self.net.config["classes"] ** torch.arange(k - 1, -1, -1, device=labels.device)  # (k,)
        return (labels * base).sum(1)

    @property
    def num_classes(self) -> int:
        return self.net.config["classes"]
