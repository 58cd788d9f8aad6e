"""The `fid` case: one evaluation of FID + KID on N generated images (10k), as the metrics callback does it (real
features cached on disk, generated ones embedded in batches) against torchmetrics fed the same images and the same
feature network the plain way (real and generated images embedded at every evaluation). Both feature networks:
the domain classifier (measured on all N) and the FID Inception network (on a CPU, timed on `inception_n` images
and extrapolated to N, marked "est.")."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ..data.idx import IdxImages
from ..images import to_uint8
from ..metrics.classifier import ClassifierFeatures, classifier_path
from ..metrics.features import InceptionFeatures
from ..metrics.fid import RealFeatures, embed, fid_kid
from .common import timed

HEADER = "| case | ganlab | plain torchmetrics | speed-up | ganlab images/s |\n|---|---|---|---|---|"


class _Uint8(torch.nn.Module):
    """A feature network as torchmetrics takes it: uint8 images in, features out."""

    def __init__(self, features: torch.nn.Module):
        super().__init__()
        self.features = features
        self.num_features = None

    def forward(self, x):
        return self.features(x)


def bench_fid(n: int, inception_n: int, root: str) -> list[str]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = IdxImages(root=root, size=32)
    dm.setup()
    real = to_uint8(dm.x[:n]).to(device)  # (n, 1, 32, 32)
    fake = real.flip(-1)  # (n, 1, 32, 32): mirrored garments, a different set of the same size
    nets = [("classifier", lambda: ClassifierFeatures(classifier_path(root)), n),
            ("inception", InceptionFeatures, n if device.type == "cuda" else inception_n)]
    rows = []
    for name, make, m in nets:
        try:
            net = make().to(device)
        except FileNotFoundError as e:  # make classifier / make inception put them in the cache
            rows.append(f"| FID+KID, {name} features | skipped: {e} |")
            continue
        feat = _Uint8(net)
        dim = embed(net, real[:2]).shape[1]
        feat.num_features = dim
        with tempfile.TemporaryDirectory() as tmp:
            cache = RealFeatures(net, root=Path(tmp))
            cache.get("bench", lambda: real[:m])  # computed once, as on the first evaluation of a run
            t_ganlab, _ = timed(lambda: fid_kid(cache.get("bench", lambda: real[:m]), embed(net, fake[:m]),
                                                min(1000, m)), device)

        def plain():
            fid = FrechetInceptionDistance(feature=feat).to(device)
            kid = KernelInceptionDistance(feature=feat, subset_size=min(1000, m)).to(device)
            for i in range(0, m, 200):
                for metric in (fid, kid):
                    metric.update(real[i:i + 200], real=True)
                    metric.update(fake[i:i + 200], real=False)
            return float(fid.compute()), kid.compute()

        t_plain, _ = timed(plain, device)
        scale, est = n / m, " (est.)" if m < n else ""
        rows.append(f"| FID+KID, {name} features, N={n}, {device.type} | {t_ganlab * scale:.1f} s{est} | "
                    f"{t_plain * scale:.1f} s{est} | {t_plain / t_ganlab:.2f}x | {m / t_ganlab:.0f} |")
    return rows
