"""`make bench` (python -m ganlab.bench [case ...]): ganlab beside a plain PyTorch / torchmetrics baseline
written here, in one process, same inputs, reported as ratios (docs/performance.md).

Cases:
- `toy`: the training step, MLP nets on grid25, CPU (step.py).
- `dcgan32`: the training step of the DCGAN preset (Fashion-MNIST 32x32, Adam), CPU (step.py).
- `toy` also times `toy_fast`: the same with trainer.fast=true (the static step, without CUDA graphs on a CPU).
- `recipe`: make train's recipe (model=lsgan_fast: LayerNorm critic of half width, lazy R1, EMA generator, TTUR,
  least squares, G's full-resolution tail, one G pass per iteration), eager fp32 and `recipe_fast` (trainer=fast, as
  make train runs it) against the same plain fp32 loop with R1, the EMA and the kept fakes written out, CPU (step.py).
- `wgan_gp64`: the training step of a 64x64 DCGAN WGAN-GP (n_critic 5, gradient penalty), batch 64 and 256, ganlab
  eager (fp32), bf16 and trainer=fast against the same plain fp32 loop; GPU only (a "skipped: needs a GPU" line per
  row without CUDA) (step.py).
- `fid`: FID + KID on 10k generated images against torchmetrics used well (one feature pass shared by FID and KID,
  the real set embedded once per run): a run's later evaluation, its first, and the first of a later run whose real
  features ganlab finds in its disk cache; both sides' values checked equal (fid.py).
- `inception`: the FID Inception network's images/s as ganlab runs it (the file's network rebuilt in eager PyTorch,
  batch norms folded, channels-last) against the file's own forward, features checked equal to 1e-5 (inception.py).

Training-step rows: generator iterations/s, real samples/s, model FLOP utilisation (FLOPs of one iteration counted
with torch's FlopCounterMode, backward and the gradient penalty's double backward included, times iterations/s,
over a peak: on a CPU an fp32 matmul measured in this process, on a GPU the device's dense peak from a table) and
peak memory (CUDA max_memory_allocated, or on a CPU the growth of the process's peak RSS over the run), for ganlab
and the plain loop; ratio = ganlab / plain generator iterations/s, median and spread over interleaved repeats.
"""
from __future__ import annotations

import argparse

import torch

CASES = ("toy", "dcgan32", "recipe", "wgan_gp64", "fid", "inception")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ganlab.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="*", help=f"cases to run, of {', '.join(CASES)} (default: all)")
    p.add_argument("--n", type=int, default=10_000, help="fid: generated images per FID evaluation")
    p.add_argument("--inception-n", type=int, default=20, help="fid: images timed with Inception on a CPU "
                   "(estimated at --n: the other images' embedding added at the measured time per image)")
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST idx files")
    p.add_argument("--iters", type=int, help="training steps: timed iterations per run (default: as many as the "
                   "plain loop runs in the case's few seconds, sized on the warm-up run)")
    p.add_argument("--warmup", type=int, help="training steps: untimed iterations per run (default: the case's)")
    p.add_argument("--repeats", type=int, help="ganlab / plain pairs (default: the training-step case's; fid: 3, "
                   "1 for Inception on a CPU; inception: 3 on a CPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, as train.py runs)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.cases) - set(CASES)
    if unknown:
        p.error(f"unknown case {', '.join(sorted(unknown))}: choose from {', '.join(CASES)}")
    cases = [c for c in CASES if c in (args.cases or CASES)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}", flush=True)
    steps = [c for c in cases if c not in ("fid", "inception")]
    if steps:
        from .step import HEADER, STEP_CASES, bench_step

        print("\nTraining step: ganlab (build_module + Trainer.fit) / a plain PyTorch loop of the same nets, "
              "ratio = ganlab / plain\n" + HEADER, flush=True)
        notes = []
        for name in steps:
            for case in STEP_CASES[name]:
                res = bench_step(case, root=args.root, warmup=args.warmup, iters=args.iters, repeats=args.repeats)
                if isinstance(res, str):
                    print(res, flush=True)
                    continue
                print(res.row(), flush=True)
                notes.append(f"- {res.label}; {res.repeats} pairs of {res.iters} timed iterations; "
                             f"MFU peak: {res.peak_what}; memory: {res.mem_what}; probe losses (d, g) after the "
                             f"same iterations: ganlab {res.ganlab_losses[0]:.6g}, {res.ganlab_losses[1]:.6g} / "
                             f"plain {res.plain_losses[0]:.6g}, {res.plain_losses[1]:.6g}")
        print("\n".join(notes), flush=True)
    if "fid" in cases:
        from .fid import HEADER as FID_HEADER, bench_fid

        print("\nMetric evaluation\n" + FID_HEADER, flush=True)
        for row in bench_fid(args.n, args.inception_n, args.root, args.repeats):
            print(row, flush=True)
    if "inception" in cases:
        from .inception import HEADER as INCEPTION_HEADER, bench_inception

        print("\nFeature network: ganlab's Inception / the network as loaded, ratio = ganlab / loaded images/s\n"
              + INCEPTION_HEADER, flush=True)
        for row in bench_inception(args.root, pairs=args.repeats):
            print(row, flush=True)
