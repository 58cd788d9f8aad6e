"""The `inception` case: the FID Inception network's images/s as ganlab runs it (metrics/features.py's
InceptionFeatures: TF1 resize, then the file's network rebuilt in eager PyTorch with folded batch norms on
channels-last tensors, metrics/inception_eager.py) beside the same network as loaded (the TorchScript file's own
forward on the same resized, contiguous batch), on the same Fashion-MNIST images, in ABBA pairs. Both sides' features
must agree to 1e-5 of each image's largest feature, or the case fails.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..data.idx import IdxImages
from ..images import to_uint8
from ..metrics.features import InceptionFeatures, exact_fp32
from .common import median_spread, timed

HEADER = ("| case | images/s ganlab / as loaded | ratio median [min-max] | largest difference |\n"
          "|---|---|---|---|")
RTOL = 1e-5  # of each image's largest feature


def bench_inception(root: str, batch: int = 32, batches: int = 2, pairs: int | None = None) -> list[str]:
    """The table row and its note; `batches` batches of `batch` images per side per pair."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        net = InceptionFeatures().to(device)
    except FileNotFoundError as e:  # make inception puts it in the cache
        return [f"| inception | skipped: {e} |"]
    pairs = pairs or (3 if device.type == "cpu" else 5)
    dm = IdxImages(root=root, size=28)
    dm.setup()
    images = to_uint8(dm.x[:batch * batches]).to(device)  # (batch * batches, 1, 28, 28) uint8

    @torch.no_grad()
    def loaded(x: Tensor) -> Tensor:  # the TorchScript file as loaded, the same preprocessing
        with exact_fp32(device):
            return net.scripted(net.inputs(x.expand(-1, 3, -1, -1)))  # (B, 2048)

    sides = {"ganlab": net, "loaded": loaded}

    def run(side: str) -> Tensor:
        return torch.cat([sides[side](images[i:i + batch]) for i in range(0, len(images), batch)])

    for embed in sides.values():  # warm-up, untimed
        embed(images[:batch])
    secs = {"ganlab": [], "loaded": []}
    worst = 0.0
    for k in range(pairs):
        out = {}
        for side in (("ganlab", "loaded") if k % 2 == 0 else ("loaded", "ganlab")):
            t, out[side] = timed(lambda side=side: run(side), device)
            secs[side].append(t)
        worst = max(worst, float(((out["ganlab"] - out["loaded"]).abs()
                                  / out["loaded"].abs().amax(1, keepdim=True)).max()))
    if worst > RTOL:
        raise AssertionError(f"inception: ganlab's features differ from the network's as loaded by {worst:.2e} of "
                             f"an image's largest feature (allowed {RTOL:g})")
    n = len(images)
    g, p = n / median_spread(secs["ganlab"])[0], n / median_spread(secs["loaded"])[0]
    med, lo, hi = median_spread([tl / tg for tg, tl in zip(secs["ganlab"], secs["loaded"])])
    row = (f"| inception, {device.type}, batch {batch} | {g:.1f} / {p:.1f} | **{med:.2f}x** [{lo:.2f}-{hi:.2f}] | "
           f"{worst:.1e} |")
    note = (f"- inception: {n} Fashion-MNIST images (28x28, TF1 resize to 299) per side per pair, batches of {batch}, "
            f"{pairs} ABBA pairs, {torch.get_num_threads()} threads; largest difference of a feature "
            f"over its image's largest (checked <= {RTOL:g})")
    return [row, "", note]
