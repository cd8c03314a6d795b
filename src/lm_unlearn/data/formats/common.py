"""Shared parts of the public-format converters: reading rows and checked field access.

Every converter reads the user's file into `(where, row)` pairs with the same readers that
`read_records` uses (JSONL, JSON, CSV, Parquet), takes fields through `text`/`text_list`/
`flag`, which raise a `DataError` naming the file, the record and the field, and returns
`DataFile`s that `output.write_converted` writes as prompt/response (or text) JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lm_unlearn.data import readers
from lm_unlearn.data.readers import field_names, shorten
from lm_unlearn.errors import DataError

Row = tuple[str, dict]


def read_any(path: str | Path) -> list[tuple[str, Any]]:
    """Rows of any JSON type; `where` is "FILE: line N" / "FILE: record N"."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    out = [(f"{path}: {where}", row) for where, row in readers.read_rows(path)]
    if not out:
        raise DataError(f"{path}: no records")
    return out


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a JSONL, JSON, CSV or Parquet file, each an object with fields."""
    out = read_any(path)
    for where, row in out:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with fields, got {type(row).__name__}")
    return out


def _missing(row: dict, name: str, where: str, fmt: str) -> DataError:
    return DataError(f"{where}: missing field '{name}' (fields: {field_names(row)}); is this a {fmt} file?")


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
    raise DataError(f"{where}: field '{name}' must be true or false, got {shorten(value)}")


SPLITS = {"forget": "forget", "retain": "retain", "holdout": "heldout", "heldout": "heldout"}


def split_of(name: str) -> str | None:
    """The split a file name starts with (forget10 -> forget, holdout -> heldout), or None."""
    return next((role for prefix, role in SPLITS.items() if name.lower().startswith(prefix)), None)


def role_of(name: str, kind: str = "") -> str:
    """A file's role from its name's split and its kind: forget_qa, retain_perturbed, heldout, ...

    A name without a split prefix is its own role (with the kind added), so two such files
    never share one.
    """
    split = split_of(name)
    if split is not None:
        return f"{split}_{kind}" if kind else split
    return name if not kind or name.endswith(f"_{kind}") else f"{name}_{kind}"
