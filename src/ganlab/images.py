"""The edge between the model's float samples and files: images are [-1, 1] inside, uint8 outside."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import make_grid


def to_uint8(x: Tensor) -> Tensor:
    """(N, C, H, W) floats in [-1, 1] -> uint8 in [0, 255] (values outside are clipped)."""
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def save_grid(x: Tensor, path: str | Path) -> None:
    """A square-ish PNG grid of images (N, C, H, W) in [-1, 1]."""
    from PIL import Image

    grid = make_grid(to_uint8(x).cpu(), nrow=math.ceil(math.sqrt(len(x))), padding=2)  # (3|1, H', W')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).squeeze(-1).numpy()).save(path)


def save_scatter(fake: Tensor, path: str | Path, real: Tensor | None = None) -> None:
    """A PNG scatter plot of 1-D (histogram) or 2-D toy samples (N, D), generated over real."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fake = fake.detach().float().cpu()
    real = real.detach().float().cpu() if real is not None else None
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if fake.shape[1] == 1:
        bins = 100
        if real is not None:
            ax.hist(real[:, 0].numpy(), bins=bins, density=True, alpha=0.5, label="real")
        ax.hist(fake[:, 0].numpy(), bins=bins, density=True, alpha=0.5, label="generated")
    else:
        if real is not None:
            ax.scatter(real[:, 0], real[:, 1], s=2, c="0.6", label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=2, c="tab:red", label="generated")
        ax.set_aspect("equal")
    ax.legend(loc="upper right")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def save_samples(x: Tensor, path: str | Path, real: Tensor | None = None) -> None:
    """Images (N, C, H, W) as a grid, toy samples (N, D) as a scatter plot."""
    if x.dim() == 4:
        save_grid(x, path)
    else:
        save_scatter(x, path, real)
