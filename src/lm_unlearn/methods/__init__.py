"""Procedures that are more than one loss term: masks, in-context unlearning and sequential
requests. The engine calls `dispatch`."""

from __future__ import annotations

from pathlib import Path

import yaml

from lm_unlearn.config import RunConfig


def dispatch(cfg: RunConfig, run_dir: Path, resume: bool = False):
    """Runs that are not one training loop: `data.requests` (sequential) and method=icu.

    Returns the RunResult, or None when the engine should train as usual.
    """
    if cfg.data.requests:
        from lm_unlearn.methods.sequential import run_sequential

        return run_sequential(cfg, run_dir, resume)
    if cfg.method == "icu" and cfg.objective is None:
        return run_icu(cfg, run_dir)
    return None


def run_icu(cfg: RunConfig, run_dir: Path):
    from lm_unlearn.data import read_records
    from lm_unlearn.data.demo import demo_dataset
    from lm_unlearn.data.sampling import read_refusals
    from lm_unlearn.files import atomic_write_text
    from lm_unlearn.manifest import data_entry, now
    from lm_unlearn.methods.icu import WARNING, build_wrapper, save_wrapper
    from lm_unlearn.rundir import PROMPT_WRAPPER, RunDir, RunResult, write_manifest

    forget_cfg = cfg.data.forget or demo_dataset("forget")
    records = read_records(forget_cfg, "forget")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_wrapper(build_wrapper(records, read_refusals(cfg.data.refusals)), RunDir(run_dir).prompt_wrapper)
    manifest = {
        "tool": "lm-unlearn",
        "status": "finished",
        "finished": now(),
        "kind": "icu",
        "warning": WARNING,
        "config": cfg.model_dump(mode="json"),
        "data": {"forget": data_entry(forget_cfg.path, records)},
        "outputs": {"model_spec": cfg.model.name, "prompt_wrapper": PROMPT_WRAPPER},
    }
    write_manifest(run_dir, manifest)
    atomic_write_text(RunDir(run_dir).config, yaml.safe_dump(cfg.model_dump(mode="json")))
    return RunResult(run_dir=run_dir, steps=0, stop_reason="icu: no training (prompt wrapper only)")
