"""Which precision a run or evaluation uses, and why.

`precision: auto` picks bf16 autocast only where bf16 matmuls are fast: a GPU that supports
it, or a CPU with bf16 matrix instructions (AMX or AVX-512 BF16). On a CPU with only AVX2,
bf16 is emulated and several times slower than fp32, so auto picks fp32 there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from lm_unlearn.errors import ConfigError

log = logging.getLogger(__name__)


def cpu_bf16_flags() -> list[str]:
    """The CPU's bf16 matrix-instruction flags (amx_bf16, avx512_bf16); empty without them."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(flags & {"amx_bf16", "avx512_bf16"})


def cpu_supports_bf16() -> bool:
    return bool(cpu_bf16_flags())


def has_accelerator() -> bool:
    probe = getattr(torch, "accelerator", None)  # torch >= 2.6 knows every device type
    return probe.is_available() if probe is not None else torch.cuda.is_available()


def choose_precision(requested: str) -> tuple[str, str]:
    """(precision, the reason in words) for a requested 'auto', 'bf16' or 'fp32'."""
    if requested != "auto":
        return requested, "set explicitly"
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16", "the GPU supports bf16"
        return "fp32", "the GPU does not support bf16"
    flags = cpu_bf16_flags()
    if flags:
        return "bf16", f"the CPU has bf16 matrix instructions ({', '.join(flags)})"
    return "fp32", "the CPU has no bf16 matrix instructions (AMX, AVX-512 BF16), so bf16 would be slow"


def resolve_precision(requested: str, what: str = "") -> str:
    """The precision to use; with `what` (e.g. "training"), the choice and its reason are logged."""
    precision, reason = choose_precision(requested)
    if what:
        log.info("%s precision: %s (%s: %s)", what, precision, requested, reason)
    return precision


def resolve_frozen_dtype(requested: str, precision: str) -> str:
    if requested == "auto":
        return "bf16" if precision == "bf16" else "fp32"
    if requested == "bf16" and precision != "bf16":
        raise ConfigError("train.frozen_dtype=bf16 needs train.precision bf16 (or auto on bf16 hardware)")
    return requested
