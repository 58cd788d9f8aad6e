"""`trainer.precision=auto` (trainer=fast's): bf16-mixed where the hardware computes in bf16, else 32-true.

bf16 autocast pays only on hardware with bf16 arithmetic: CUDA GPUs that support it (Ampere and later) and CPUs
with bf16 units (x86: AVX-512 BF16 or AMX, the `avx512_bf16` / `amx_bf16` flags; Arm: the `bf16` feature), which
oneDNN uses for convolutions and matmuls. A CPU without them emulates bf16 and runs far slower than fp32: on a
2-core AMD EPYC with AVX2 only, the DCGAN step of `experiment=fmnist_fast` ran 0.2 iterations/s in bf16-mixed
against 3.3 in 32-true (the same step ran 12.8 and 7.2 on a 2-core Xeon with AMX). So `auto` is resolved once per
run, before anything is built, from the machine the run trains on; the resolved value is the one the run's config
records (hparams, checkpoint), so the same command continues a run on the same machine (train.main resolves before
resume.plan compares), and on a machine of the other kind it is refused, naming trainer.precision (pass the
recorded value to go on). An explicit `trainer.precision=bf16-mixed` on a CPU without bf16 units is kept, with
one warning saying what it costs.
"""
from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import DictConfig, OmegaConf, open_dict

CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # /proc/cpuinfo: x86 `flags`, Arm `Features`


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bf16 arithmetic units, from the kernel's CPU flags (False where they cannot be read:
    fp32 is never the slow choice)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and CPU_BF16_FLAGS & set(value.split()):
            return True
    return False


def trains_on_cuda(cfg: DictConfig) -> bool:
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def native_bf16(cfg: DictConfig) -> bool:
    """Whether the device this run trains on computes in bf16 (see the module's docstring)."""
    if trains_on_cuda(cfg):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return cpu_has_bf16()


def resolve_precision(cfg: DictConfig) -> None:
    """Replace trainer.precision=auto with bf16-mixed or 32-true for this machine, in place; warn once when bf16 is
    asked for on a CPU without bf16 units."""
    precision = str(OmegaConf.select(cfg, "trainer.precision", default="32-true"))
    if precision == "auto":
        native = native_bf16(cfg)
        with open_dict(cfg.trainer):
            cfg.trainer.precision = "bf16-mixed" if native else "32-true"
        if not native and not trains_on_cuda(cfg):
            rank_zero_info("trainer.precision=auto: this CPU has no bf16 units (no avx512_bf16 / amx_bf16 / bf16 in "
                           "/proc/cpuinfo), so the run trains in 32-true (bf16 would be emulated, many times slower)")
    # Lightning runs a CPU's 16-mixed as bf16 too
    elif precision.startswith(("bf16", "16")) and not trains_on_cuda(cfg) and not cpu_has_bf16():
        rank_zero_warn(f"trainer.precision={precision} on a CPU without bf16 units (no avx512_bf16 / amx_bf16 / bf16 "
                       f"in /proc/cpuinfo): bf16 is emulated there, many times slower than fp32; use "
                       f"trainer.precision=32-true (or auto)")
