"""The run's deletion record: what was removed, from which model, how, and what came out."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from lm_unlearn.data.records import Record
from lm_unlearn.files import sha256_file
from lm_unlearn.rundir import ADAPTER, MODEL, Manifest, RunDir

PACKAGES = ("lm-unlearn", "torch", "transformers", "peft", "accelerate", "safetensors", "datasets")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def records_digest(records: list[Record]) -> str:
    """SHA-256 of the records' content, independent of file format."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps([r.prompt, r.response], ensure_ascii=False).encode())
    return digest.hexdigest()


def data_entry(path: str, records: list[Record]) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "records": len(records), "content_sha256": records_digest(records)}
    if Path(path).is_file():
        entry["file_sha256"] = sha256_file(path)
    return entry


def source_revision(manifest: Manifest) -> str | None:
    """The hub revision the run's source model was loaded at (None: the default branch)."""
    model = (manifest.config or {}).get("model") or {}
    return model.get("revision") if isinstance(model, dict) else None


def verify_outputs(run_dir: str | Path, manifest: Manifest) -> None:
    """Check RUN_DIR's model/ and adapter/ against the hashes its manifest recorded at the end of
    training, so an evaluation or audit never reports on weights the run did not produce."""
    from lm_unlearn.errors import UnlearnError
    from lm_unlearn.files import sha256_tree

    outputs = manifest.outputs or {}
    for name in (MODEL, ADAPTER):
        recorded = (outputs.get(name) or {}).get("sha256")
        if recorded is None:
            continue
        target = Path(run_dir) / name
        found = sha256_tree(target) if target.is_dir() else {}
        if found != recorded:
            changed = sorted(set(found) ^ set(recorded) | {k for k in found if found[k] != recorded.get(k)})
            raise UnlearnError(
                f"{target} does not match the hashes in {RunDir(run_dir).manifest} "
                f"(differs: {', '.join(changed[:3]) or 'all'}); the weights were changed after the "
                "run finished: re-run it, or evaluate it as a plain model (--model DIR/model --out OUT)"
            )
