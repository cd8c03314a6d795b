"""Cost of a run (from its manifest.json and metrics.jsonl) and of the evaluation itself."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

from lm_unlearn.rundir import RunDir, read_history, read_manifest


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


def run_cost(run_dir: Path, n_params: int | None = None) -> dict[str, Any]:
    """Wall time, tokens, peak memory and estimated FLOPs of the training run in `run_dir`.

    FLOPs are estimated as 6 * N * tokens (Kaplan et al., 2020: forward 2N + backward 4N per
    token, N = parameters of the model) - an order of magnitude, not a measurement: it ignores
    attention, reference-model forwards and, for LoRA, the skipped weight gradients.
    """
    cost: dict[str, Any] = {}
    rows = read_history(RunDir(run_dir).metrics)
    manifest = read_manifest(run_dir, missing_ok=True)
    if rows:
        cost["steps"] = rows[-1].get("step")
        cost["train_wall_s"] = rows[-1].get("elapsed_s")
        cost["train_tokens"] = int(sum(r.get("tokens", 0) for r in rows))
    if manifest.selection is not None:  # the step a target-stopped run kept
        cost["kept_step"] = manifest.selection.get("step")
    older = manifest.model_extra or {}  # top-level cost keys of manifests before the cost block
    for key in ("peak_memory_bytes", "peak_rss_bytes", "peak_gpu_memory_bytes", "wall_s"):
        if key in older:
            cost[f"train_{key}"] = older[key]
    if manifest.cost is not None:  # if the engine records its own cost block
        cost.update({f"train_{k}": v for k, v in manifest.cost.items()})
    if n_params and cost.get("train_tokens"):
        cost["train_flops_estimate"] = 6 * n_params * cost["train_tokens"]
    return cost
