"""The run directory, `unlearn run`'s one output: what lives where, and reading and writing it.

    runs/NAME/
      manifest.json     the deletion record: status, config, data and model hashes, cost
      config.yaml       the validated config the run used (`--resume` reads it)
      metrics.jsonl     one JSON row per optimizer step
      validation.json   digests of the validation splits (never evaluation data)
      model/ adapter/   the unlearned weights (full, or a LoRA adapter)
      icu.json          in-context unlearning: the prompt wrapper instead of weights
      alternates.jsonl  altpo: the original model's alternate answers, per forget record digest
      phases/           undo: unlearn/ and distill/ (run directories), student/ and noise.json
      requests/         sequential requests: one run directory per request
      checkpoints/      resumable training state
      eval.json report.html audit.json audit.html   written later by eval, report and audit
      benchmark_audit.json  `unlearn benchmark --audit`: the attacks at the benchmark's budget

Every module finds these files through this one. The manifest is a typed `Manifest` with `kind`
and `schema_version` (one written before versions existed reads as version 0), always written
atomically by `write_manifest` and read by `read_manifest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
BENCHMARK_AUDIT = "benchmark_audit.json"
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
    benchmark_audit = property(lambda self: self.root / BENCHMARK_AUDIT)
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


class Manifest(BaseModel):
    """RUN_DIR/manifest.json, the run's deletion record, as the engine and the procedures write it.

    `kind` and `schema_version` say how to read the rest. Every field is optional, so an older or
    partial manifest still reads, and keys this model does not name are kept as they are
    (`model_extra`). Only fields that were set are written, in the order below; a training run
    leaves `kind` unset, so its manifest.json has the keys pinned in tests/pins.
    """

    model_config = ConfigDict(extra="allow")

    tool: str | None = None
    kind: str = Field("train", description="train (the engine), or the procedure: icu, sequential, undo")
    status: str | None = Field(None, description="running, finished or failed")
    warning: str | None = Field(None, description="what the method does not protect against (icu)")
    started: str | None = None
    config: dict[str, Any] | None = Field(None, description="the validated run config")
    objective: str | None = Field(None, description="the weighted terms, e.g. 1*npo + 1*kl")
    mask: dict[str, Any] | None = Field(None, description="train.mask's summary, or null")
    frozen_dtype: dict[str, Any] | None = None
    precision: str | None = None
    processes: int | None = None
    versions: dict[str, Any] | None = Field(None, description="python, platform and package versions")
    source_model: dict[str, Any] | None = Field(None, description="spec, local path and file hashes")
    data: dict[str, Any] | None = Field(None, description="per split: path, records, content hashes")
    validation: dict[str, Any] | None = Field(None, description="the validation splits' digests")
    requests: list[dict[str, Any]] | None = Field(None, description="sequential: one entry per request")
    phases: list[dict[str, Any]] | None = Field(None, description="undo: one entry per phase")
    schema_version: int = Field(0, description="the layout; 0 for a manifest from before versions")
    resumed_at: list[dict[str, Any]] | None = Field(None, description="time and step of each resume")
    post_phase: dict[str, Any] | None = Field(None, description="after_training hooks' records, per term")
    finished: str | None = None
    steps: int | None = None
    stop_reason: str | None = None
    selection: dict[str, Any] | None = Field(None, description="the kept step and why")
    final: dict[str, Any] | None = Field(None, description="the last metrics.jsonl row")
    cost: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = Field(None, description="model/ adapter/ paths and hashes")
    error: str | None = Field(None, description="why a failed run failed")

    def update(self, values: dict[str, Any]) -> None:
        """Set several fields at once; a name the model lacks becomes an extra key."""
        for key, value in values.items():
            setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        """The JSON object manifest.json holds."""
        return self.model_dump(exclude_unset=True)


def manifest_version(manifest: Manifest) -> int:
    """The manifest's schema version; 0 for one written before versions existed."""
    return manifest.schema_version


def read_manifest(run_dir: str | Path, missing_ok: bool = False) -> Manifest:
    """RUN_DIR/manifest.json, or an error that names it and says what to do (missing_ok: an
    empty Manifest when there is none)."""
    path = RunDir(run_dir).manifest
    if not path.is_file():
        if missing_ok:
            return Manifest()
        raise UnlearnError(f"{path} is missing: {run_dir} is not a run directory, or its run never started")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnlearnError(f"{path}: not valid JSON ({exc}); the run directory is damaged") from None
    if not isinstance(manifest, dict):
        raise UnlearnError(f"{path}: expected a JSON object; the run directory is damaged")
    try:
        return Manifest.model_validate(manifest)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UnlearnError(f"{path}: {where}; the run directory is damaged") from None


def write_manifest(run_dir: str | Path, manifest: Manifest) -> Path:
    """Write RUN_DIR/manifest.json atomically (a reader never sees half of it), stamped with the
    current `schema_version`; the manifest is stamped in place so later writes keep it."""
    manifest.schema_version = SCHEMA_VERSION
    path = RunDir(run_dir).manifest
    atomic_write_json(path, manifest.to_json())
    return path
