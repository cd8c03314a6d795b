"""Procedures above the engine: runs that are more than one training loop.

A recipe names the procedure it runs instead of the loop (`recipe("icu", ..., procedure="icu")`,
a key of PROCEDURES: icu, undo), and `data.requests` makes any run sequential. `lm_unlearn.api.unlearn` asks
`procedure_for` and runs the procedure, or else the engine; the engine never imports this package.
A method that is one training loop with a phase before or after it is a term with lifecycle hooks
(`@term(..., before_training=..., after_training=...)`), not a procedure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lm_unlearn.config import RunConfig
from lm_unlearn.methods.icu import run_icu
from lm_unlearn.methods.sequential import run_sequential
from lm_unlearn.methods.undo import run_undo
from lm_unlearn.objectives.registry import recipe_procedure
from lm_unlearn.rundir import RunResult

Procedure = Callable[[RunConfig, Path, bool], RunResult]  # (cfg, run_dir, resume)

PROCEDURES: dict[str, Procedure] = {"icu": run_icu, "undo": run_undo}


def procedure_for(cfg: RunConfig) -> Procedure | None:
    """The procedure `cfg` asks for, or None when the engine's one training loop is the run."""
    if cfg.data.requests:
        return run_sequential
    name = recipe_procedure(cfg.method) if cfg.objective is None else None
    if name is None:
        return None
    if name not in PROCEDURES:
        raise RuntimeError(f"recipe {cfg.method!r} names procedure {name!r}, which lm_unlearn.methods lacks")
    return PROCEDURES[name]
