"""`make bench` (python -m ganlab.bench [case ...]): ganlab beside a plain PyTorch / torchmetrics baseline
written here, in one process, same inputs, reported as ratios.

Cases:
- `fid`: one evaluation of FID + KID on N generated images (10k), as the metrics callback does it (real
  features cached on disk, generated ones embedded in batches) against torchmetrics fed the same images and
  the same feature network the plain way (real and generated images embedded at every evaluation). Both
  feature networks: the domain classifier (measured on all N) and the FID Inception network (on a CPU,
  timed on `inception_n` images and extrapolated to N, marked "est.").
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .data.idx import IdxImages
from .images import to_uint8
from .metrics.classifier import ClassifierFeatures, classifier_path
from .metrics.features import InceptionFeatures
from .metrics.fid import RealFeatures, embed, fid_kid


CASES = ("fid",)


class _Uint8(torch.nn.Module):
    """A feature network as torchmetrics takes it: uint8 images in, features out."""

    def __init__(self, features: torch.nn.Module):
        super().__init__()
        self.features = features
        self.num_features = None

    def forward(self, x):
        return self.features(x)


def _timed(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def bench_fid(n: int, inception_n: int, root: str) -> list[str]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = IdxImages(root=root, size=32)
    dm.setup()
    real = to_uint8(dm.x[:n]).to(device)  # (n, 1, 32, 32)
    fake = real.flip(-1)  # (n, 1, 32, 32): mirrored garments, a different set of the same size
    nets = [("classifier", ClassifierFeatures(classifier_path(root)), n)]
    nets.append(("inception", InceptionFeatures(), n if device.type == "cuda" else inception_n))
    rows = []
    for name, net, m in nets:
        net = net.to(device)
        feat = _Uint8(net)
        dim = embed(net, real[:2]).shape[1]
        feat.num_features = dim
        with tempfile.TemporaryDirectory() as tmp:
            cache = RealFeatures(net, root=Path(tmp))
            cache.get("bench", lambda: real[:m])  # computed once, as on the first evaluation of a run
            t_ganlab, _ = _timed(lambda: fid_kid(cache.get("bench", lambda: real[:m]), embed(net, fake[:m]),
                                                 min(1000, m)))

        def plain():
            fid = FrechetInceptionDistance(feature=feat).to(device)
            kid = KernelInceptionDistance(feature=feat, subset_size=min(1000, m)).to(device)
            for i in range(0, m, 200):
                for metric in (fid, kid):
                    metric.update(real[i:i + 200], real=True)
                    metric.update(fake[i:i + 200], real=False)
            return float(fid.compute()), kid.compute()

        t_plain, _ = _timed(plain)
        scale, est = n / m, " (est.)" if m < n else ""
        rows.append(f"| FID+KID, {name} features, N={n}, {device.type} | {t_ganlab * scale:.1f} s{est} | "
                    f"{t_plain * scale:.1f} s{est} | {t_plain / t_ganlab:.2f}x | {m / t_ganlab:.0f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="*", help=f"cases to run, of {', '.join(CASES)} (default: all)")
    p.add_argument("--n", type=int, default=10_000, help="generated images per FID evaluation")
    p.add_argument("--inception-n", type=int, default=200, help="images timed with Inception on a CPU")
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST idx files")
    args = p.parse_args(argv)
    unknown = set(args.cases) - set(CASES)
    if unknown:
        p.error(f"unknown case {', '.join(sorted(unknown))}: choose from {', '.join(CASES)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}")
    print("| case | ganlab | plain | speed-up | ganlab images/s |\n|---|---|---|---|---|")
    if "fid" in (args.cases or ["fid"]):
        for row in bench_fid(args.n, args.inception_n, args.root):
            print(row, flush=True)


if __name__ == "__main__":
    main()
