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
