"""The edge between the model's float samples and files: images are [-1, 1] inside, uint8 outside."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.utils import make_grid


def to_uint8(x: Tensor) -> Tensor:
    """(N, C, H, W) floats in [-1, 1] -> uint8 in [0, 255] (values outside are clipped)."""
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def save_png(image: np.ndarray, path: str | Path) -> None:
    """A picture, uint8 (H, W, 3), as a PNG file (its folder made as needed)."""
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")  # whatever the name ends in (a temporary file's .tmp)


def save_grid(x: Tensor, path: str | Path, nrow: int | None = None) -> np.ndarray:
    """A PNG grid of images (N, C, H, W) in [-1, 1], `nrow` images per row (default: square-ish); returns the
    picture, uint8 (H', W', 3)."""
    grid = make_grid(to_uint8(x).cpu(), nrow=nrow or math.ceil(math.sqrt(len(x))), padding=2)  # (3, H', W'): C=1 -> 3
    image = grid.permute(1, 2, 0).numpy()
    save_png(image, path)
    return image


def save_scatter(fake: Tensor, path: str | Path, real: Tensor | None = None,
                 critic: Callable[[Tensor], Tensor] | None = None) -> np.ndarray:
    """A PNG plot of 1-D (histogram) or 2-D toy samples (N, D), generated over real; returns the picture,
    uint8 (H, W, 3). With `critic` (points (M, D) -> values (M,)): its value as a heat map under the points
    (2-D) or as a line on a second y-axis (1-D), over the plotted range."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fake = fake.detach().float().cpu()
    real = real.detach().float().cpu() if real is not None else None
    points = fake if real is None else torch.cat([real, fake])  # (N', D): what the plot spans
    lo, hi = points.min(0).values, points.max(0).values  # (D,), (D,)
    pad = 0.05 * (hi - lo) + 1e-3  # a margin, and a range even when all points coincide
    lo, hi = (lo - pad).tolist(), (hi + pad).tolist()
    fig = Figure(figsize=(5, 5), dpi=100)  # fixed margins: a layout engine took 40% of the plot's time, every plot
    canvas = FigureCanvasAgg(fig)  # a figure of its own, outside pyplot's global state
    # the right margin holds the critic's axis: a second y-axis (1-D) or a colour bar's labels (2-D)
    right = 0.97 if critic is None else 0.83 if fake.shape[1] == 1 else 0.8
    fig.subplots_adjust(left=0.1, right=right, bottom=0.06, top=0.98)
    ax = fig.subplots()
    if fake.shape[1] == 1:
        bins = 100
        if real is not None:
            ax.hist(real[:, 0].numpy(), bins=bins, density=True, alpha=0.5, label="real", histtype="stepfilled")
        ax.hist(fake[:, 0].numpy(), bins=bins, density=True, alpha=0.5, label="generated", histtype="stepfilled")
        if critic is not None:
            xs = torch.linspace(lo[0], hi[0], 400)[:, None]  # (400, 1)
            twin = ax.twinx()
            twin.plot(xs[:, 0].numpy(), critic(xs).numpy(), c="k", lw=1)
            twin.set_ylabel("critic D(x)")
    else:
        if critic is not None and fake.shape[1] == 2:
            res = 128
            gy, gx = torch.meshgrid(torch.linspace(lo[1], hi[1], res), torch.linspace(lo[0], hi[0], res),
                                    indexing="ij")  # (res, res) each: row = y, column = x
            values = critic(torch.stack([gx.flatten(), gy.flatten()], 1)).view(res, res)  # (res², 2) -> (res, res)
            heat = ax.imshow(values.numpy(), extent=(lo[0], hi[0], lo[1], hi[1]), origin="lower", cmap="viridis")
            fig.colorbar(heat, ax=ax, shrink=0.8, fraction=0.05, pad=0.03, label="critic D(x)")
        if real is not None:
            ax.scatter(real[:, 0], real[:, 1], s=2, c="0.6", label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=2, c="tab:red", label="generated")
        ax.set_aspect("equal")
    ax.legend(loc="upper right")
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8, what the PNG holds
    save_png(image, path)
    return image


def save_samples(x: Tensor, path: str | Path, real: Tensor | None = None,
                 critic: Callable[[Tensor], Tensor] | None = None) -> np.ndarray:
    """Images (N, C, H, W) as a grid, toy samples (N, D) as a scatter plot (see save_scatter); returns the
    picture written, uint8 (H, W, 3), for the loggers."""
    if x.dim() == 4:
        return save_grid(x, path)
    return save_scatter(x, path, real, critic)
