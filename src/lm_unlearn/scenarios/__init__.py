"""Generated scenarios: a fictitious world and unlearning tasks built on it.

`unlearn data make NAME --seed S --out DIR` calls `make(NAME, ...)`. Every scenario is
deterministic per seed and writes JSONL that `unlearn run` reads, plus `scenario.json`
(what each file is for), `run.yaml` and `eval.yaml` (ready configs naming the files).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from lm_unlearn.errors import DataError

# name -> module (imported on use, so `unlearn --help` stays fast)
SCENARIOS = {
    "world": "world_data",
    "privacy": "privacy",
    "knowledge": "knowledge",
    "copyright": "copyright",
    "hallucination": "hallucination",
    "harmful": "harmful",
    "concept": "concept",
}


def _module(name: str):
    if name not in SCENARIOS:
        raise DataError(f"unknown scenario '{name}'; choose one of: {', '.join(SCENARIOS)}")
    return importlib.import_module(f"lm_unlearn.scenarios.{SCENARIOS[name]}")


def summary(name: str) -> str:
    doc = (_module(name).__doc__ or "").strip()
    return doc.split(":", 1)[-1].strip().splitlines()[0] if doc else ""


def make(name: str, out: str | Path, seed: int = 0, **options) -> Path:
    """Generate scenario `name` into `out`; `options` are the scenario's own (people, ...)."""
    fn = _module(name).make
    accepted = inspect.signature(fn).parameters
    given = {k: v for k, v in options.items() if v is not None}
    unknown = [k for k in given if k not in accepted]
    if unknown:
        opts = ", ".join("--" + k.replace("_", "-") for k in accepted if k not in ("out", "seed")) or "none"
        raise DataError(
            f"scenario '{name}' does not take --{unknown[0].replace('_', '-')} (its options: {opts})"
        )
    return fn(out, seed=seed, **given)
