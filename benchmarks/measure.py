"""How the benchmarks measure: wall time (synchronized on CUDA), peak memory, and the
machine's own ceilings (memory bandwidth, matmul rate) that a forward's bound is set by."""

from __future__ import annotations

import ctypes
import statistics
import time
from pathlib import Path

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(fn, device: torch.device) -> float:
    """Wall time of one call of `fn`, in ms, with the device's queue drained around it."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - start) * 1000


def median_ms(fn, repeats: int, warmup: int, device: torch.device) -> tuple[float, list[float]]:
    """The median of `repeats` timed calls after `warmup` untimed ones, and all of them."""
    for _ in range(warmup):
        fn()
    times = [timed_ms(fn, device) for _ in range(repeats)]
    return statistics.median(times), times


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_mib(fn, device: torch.device) -> float:
    """Memory one call of `fn` adds at its peak, in MiB: on CUDA from the caching allocator's
    peak statistics; on the CPU the rise of the process's peak resident memory (VmHWM, reset
    through /proc/self/clear_refs after `malloc_trim`). What `fn` returns is kept alive until
    the peak is read (a forward's saved activations count)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        del result
        return (peak - before) / 2**20
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _rss_kib("VmRSS")
    result = fn()
    peak = _rss_kib("VmHWM")
    del result
    return (peak - before) / 1024


def memory_bandwidth_gbs(device: torch.device, mib: int = 256, repeats: int = 9) -> float:
    """Copy bandwidth, GB/s: bytes read plus bytes written by one `copy_` of `mib` MiB
    (float32), the median of `repeats` copies. The ceiling of a memory-bound forward."""
    source = torch.ones(mib * 2**18, device=device)
    target = torch.empty_like(source)
    ms, _ = median_ms(lambda: target.copy_(source), repeats, 2, device)
    return 2 * source.numel() * 4 / (ms / 1000) / 1e9


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 9) -> float:
    """float32 matmul rate, GFLOP/s, of a `size`-cubed `mm` (2 size^3 FLOPs), median of
    `repeats`. The ceiling of a compute-bound forward."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    ms, _ = median_ms(lambda: a @ b, repeats, 2, device)
    return 2 * size**3 / (ms / 1000) / 1e9
