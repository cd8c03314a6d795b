"""One run, whatever it is: `unlearn(cfg, run_dir)` runs the procedure the config asks for
(sequential requests, in-context unlearning; `lm_unlearn.methods`) or else the engine's loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lm_unlearn.config import RunConfig
from lm_unlearn.engine import train
from lm_unlearn.methods import procedure_for
from lm_unlearn.rundir import RunResult


def unlearn(
    cfg: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    on_validation: Callable[[dict, dict], None] | None = None,
) -> RunResult:
    """Unlearn according to `cfg` into run_dir (resume: continue it). on_validation(row, baseline)
    is called after each validation of a training run (`unlearn tune` prunes there)."""
    procedure = procedure_for(cfg)
    if procedure is not None:
        return procedure(cfg, run_dir, resume)
    return train(cfg, run_dir, resume=resume, on_validation=on_validation)
