"""Shared parts of the public-format converters: reading rows, checked field access, writing.

Every converter reads the user's file into `(where, row)` pairs with the same readers that
`read_records` uses (JSONL, JSON, CSV, Parquet), takes fields through `text`/`text_list`/
`flag`, which raise a `DataError` naming the file, the record and the field, and returns
`DataFile`s that `write_converted` writes as prompt/response (or text) JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lm_unlearn.config import DatasetConfig
from lm_unlearn.data.records import dataset_rows
from lm_unlearn.errors import DataError
from lm_unlearn.files import atomic_write_text, sha256_file
from lm_unlearn.scenarios.writer import DataFile, check_out_dir, jsonl_text

Row = tuple[str, dict]


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a JSONL, JSON, CSV or Parquet file; `where` is "FILE: line N" / "FILE: record N"."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    out = dataset_rows(DatasetConfig(path=str(path)), "input")
    if not out:
        raise DataError(f"{path}: no records")
    return out


def _missing(row: dict, name: str, where: str, fmt: str) -> DataError:
    return DataError(
        f"{where}: missing field '{name}' (fields: {', '.join(map(str, row)) or 'none'}); "
        f"is this a {fmt} file?"
    )


def text(row: dict, name: str, where: str, fmt: str) -> str:
    """A required, non-empty text field."""
    if name not in row or row[name] is None:
        raise _missing(row, name, where, fmt)
    value = row[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be text, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field '{name}' is empty")
    return value.strip()


def text_list(row: dict, name: str, where: str, fmt: str, sep: str | None = None) -> list[str]:
    """A required list of non-empty texts; in CSV files a string split at `sep` (or a JSON list)."""
    if name not in row or row[name] is None:
        raise _missing(row, name, where, fmt)
    value: Any = row[name]
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise DataError(f"{where}: field '{name}' looks like a list but is not valid JSON") from None
        elif sep is not None:
            value = stripped.split(sep)
        else:
            value = [stripped]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field '{name}' must be a list of texts, got {type(value).__name__}")
    items = [v.strip() for v in value if v.strip()]
    if not items:
        raise DataError(f"{where}: field '{name}' is empty")
    return items


def flag(row: dict, name: str, where: str, fmt: str) -> bool:
    """A required true/false field (JSON booleans, or true/false/1/0 text in CSV files)."""
    if name not in row or row[name] is None:
        raise _missing(row, name, where, fmt)
    value = row[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise DataError(f"{where}: field '{name}' must be true or false, got {value!r}")


def write_converted(out: str | Path, fmt: str, source: Path, files: list[DataFile]) -> Path:
    """Write converted files into `out` and record them in `out/scenario.json`.

    Several inputs may be converted into one directory (TOFU's forget10 and retain90, say):
    `scenario.json` keeps the entries of earlier conversions and adds or replaces these.
    """
    out = Path(out)
    check_out_dir(out)
    meta_path = out / "scenario.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta.setdefault("scenario", f"converted:{fmt}")
    meta.setdefault("files", {})
    for f in files:
        if not f.rows:
            continue
        atomic_write_text(out / f.name, jsonl_text(f.rows))
        meta["files"][f.name] = {
            "role": f.role,
            "records": len(f.rows),
            "description": f.description,
            "format": fmt,
            "source": str(source),
            "source_sha256": sha256_file(source),
        }
    atomic_write_text(meta_path, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return out
