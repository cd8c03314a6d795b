"""Memory probes: the peak resident memory of a window of the process, freed heap handed back
to the OS, and the GPU's peak allocation. Training, evaluation and perf read them."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def reset_peak_rss() -> bool:
    """Start a new peak-memory window (Linux: writing 5 to /proc/self/clear_refs resets VmHWM),
    so a training run or an evaluation in a longer process reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory since the last `reset_peak_rss` (Linux VmHWM), else of the whole
    process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def return_freed_memory() -> None:
    """Collect garbage and hand freed heap memory back to the OS.

    After training, glibc keeps the freed activation memory of the last step (0.7 GiB for the
    default model) in its arenas; saving a merged model then maps fresh pages on top of it.
    malloc_trim returns those pages (glibc only; elsewhere this only collects garbage).
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl)
            pass


def peak_gpu_bytes() -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
