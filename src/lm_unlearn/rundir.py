"""The run directory, `unlearn run`'s one output: what lives where, and reading and writing it.

    runs/NAME/
      manifest.json     the deletion record: status, config, data and model hashes, cost
      config.yaml       the validated config the run used (`--resume` reads it)
      metrics.jsonl     one JSON row per optimizer step
      validation.json   digests of the validation splits (never evaluation data)
      model/ adapter/   the unlearned weights (full, or a LoRA adapter)
      icu.json          in-context unlearning: the prompt wrapper instead of weights
      alternates.jsonl  altpo: the original model's alternate answers, per forget record digest
      checkpoints/      resumable training state
      eval.json report.html audit.json audit.html   written later by eval, report and audit

Every module finds these files through this one; the manifest is always written atomically and
carries `schema_version` (a manifest written before it existed reads as version 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_unlearn.errors import UnlearnError
from lm_unlearn.files import atomic_write_json

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
VALIDATION = "validation.json"
EVAL = "eval.json"
REPORT = "report.html"
AUDIT_JSON = "audit.json"
AUDIT_HTML = "audit.html"
MODEL = "model"
ADAPTER = "adapter"
PROMPT_WRAPPER = "icu.json"
ALTERNATES = "alternates.jsonl"
CHECKPOINTS = "checkpoints"

SCHEMA_VERSION = 1
"""The manifest's layout. 1: the first versioned layout (the keys pinned in tests/pins)."""


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory: `RunDir(path).manifest`, `.model`, ..."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    manifest = property(lambda self: self.root / MANIFEST)
    config = property(lambda self: self.root / CONFIG)
    metrics = property(lambda self: self.root / METRICS)
    validation = property(lambda self: self.root / VALIDATION)
    eval = property(lambda self: self.root / EVAL)
    report = property(lambda self: self.root / REPORT)
    audit_json = property(lambda self: self.root / AUDIT_JSON)
    audit_html = property(lambda self: self.root / AUDIT_HTML)
    model = property(lambda self: self.root / MODEL)
    adapter = property(lambda self: self.root / ADAPTER)
    prompt_wrapper = property(lambda self: self.root / PROMPT_WRAPPER)
    alternates = property(lambda self: self.root / ALTERNATES)
    checkpoints = property(lambda self: self.root / CHECKPOINTS)


@dataclass
class RunResult:
    """What a training run (or a procedure above it) returns."""

    run_dir: Path
    steps: int
    stop_reason: str
    history: list[dict[str, Any]] = field(default_factory=list)


def is_run_dir(path: Path) -> bool:
    """A directory `unlearn run` wrote: a manifest and the config beside it."""
    paths = RunDir(path)
    return paths.manifest.is_file() and paths.config.is_file()


def read_history(path: Path, up_to_step: int | None = None) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl (optionally only up to a step); a line cut short by a kill is
    skipped."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if up_to_step is None or row["step"] <= up_to_step:
                rows.append(row)
    return rows


def manifest_version(manifest: dict[str, Any]) -> int:
    """The manifest's schema version; 0 for one written before versions existed."""
    return int(manifest.get("schema_version", 0))


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """RUN_DIR/manifest.json, or an error that names it and says what to do."""
    path = RunDir(run_dir).manifest
    if not path.is_file():
        raise UnlearnError(f"{path} is missing: {run_dir} is not a run directory, or its run never started")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnlearnError(f"{path}: not valid JSON ({exc}); the run directory is damaged") from None
    if not isinstance(manifest, dict):
        raise UnlearnError(f"{path}: expected a JSON object; the run directory is damaged")
    return manifest


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write RUN_DIR/manifest.json atomically (a reader never sees half of it), stamped with the
    current `schema_version`; the dict is updated in place so later writes keep the stamp."""
    manifest["schema_version"] = SCHEMA_VERSION
    path = RunDir(run_dir).manifest
    atomic_write_json(path, manifest)
    return path
