"""What every case measures with: clocks that wait for the GPU, FLOP counting, the peak to rate FLOP/s against,
peak memory, and the medians of interleaved repeats."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[float, object]:
    """(seconds, fn()) with the device's queue drained on both sides."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker, whose backward hooks make autograd.grad on a leaf input (the
    gradient penalty's x_hat) fail with "A leaf node was passed to _will_engine_execute_node" (torch 2.x):
    every FLOP is counted under "Global" only, which is all the bench reads."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


class FlopCounter(FlopCounterMode):
    """torch's FlopCounterMode (matmuls and convolutions, forward and every backward, double backward included)
    without per-module attribution."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _GlobalOnly()


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounter() as fc:
        fn()
    return fc.get_total_flops()


# Dense peaks in TFLOP/s (vendor data sheets, no sparsity): bf16 tensor cores, TF32 tensor cores, fp32 SIMT.
# Keyed by a substring of torch.cuda.get_device_name(); the first match wins (longer, more specific names first).
GPU_PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),  # H200 SXM (same compute as H100 SXM)
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    ("H100", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),  # H100 SXM5
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.0, "tf32": 183.0, "fp32": 91.6}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("A10", {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    ("RTX 4090", {"bf16": 165.0, "tf32": 82.6, "fp32": 82.6}),
    ("V100", {"bf16": 0.0, "tf32": 0.0, "fp32": 15.7}),  # no bf16 / TF32
]


def gpu_peak(name: str, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s, what it is) of a GPU from the table, for a run at `precision` (Lightning's string). fp32 runs
    are rated against the TF32 peak when cuDNN / cuBLAS may use TF32 (PyTorch's default for convolutions)."""
    kind = "bf16" if "bf16" in precision or "16" in precision else (
        "tf32" if torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32 else "fp32")
    for key, peaks in GPU_PEAKS:
        if key.lower() in name.lower() and peaks.get(kind):
            return peaks[kind] * 1e12, f"{key} dense {kind} peak {peaks[kind]:g} TFLOP/s (table)"
    return None, f"no peak known for {name!r} ({kind})"


def cpu_peak(n: int = 1024, repeats: int = 8) -> tuple[float, str]:
    """A measured fp32 peak of this CPU: the best of `repeats` n x n matmuls, in this process (on shared cores
    it moves with the load, as the measured steps do)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = min(timed(lambda: a @ b)[0] for _ in range(repeats))
    peak = 2 * n ** 3 / best
    return peak, f"measured fp32 matmul {n}x{n} on {torch.get_num_threads()} threads: {peak / 1e9:.0f} GFLOP/s"


class PeakMemory:
    """Peak memory of a stretch of code: CUDA's max_memory_allocated; on a CPU the growth of the process's peak
    resident set (VmHWM, reset through /proc/self/clear_refs) over its resident set at the start; None where
    neither can be read."""

    def __init__(self, device: torch.device | str):
        self.cuda = torch.device(device).type == "cuda"
        self.base = 0

    @staticmethod
    def _status(key: str) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        except OSError:
            self.base = None
            return
        self.base = self._status("VmRSS")

    def peak(self) -> int | None:
        """Bytes: CUDA's peak allocation, or the peak RSS growth since start() on a CPU."""
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        hwm = self._status("VmHWM")
        return None if hwm is None or self.base is None else max(hwm - self.base, 0)

    @property
    def what(self) -> str:
        return "CUDA max_memory_allocated" if self.cuda else "peak RSS growth (VmHWM)"


def median_spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def fmt_mib(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 2 ** 20:.0f} MiB"
