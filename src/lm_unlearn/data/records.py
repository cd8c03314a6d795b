"""Read prompt/response or raw-text records from JSONL, JSON, CSV, Parquet or a `datasets` name."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_unlearn.config import DatasetConfig
from lm_unlearn.errors import DataError


@dataclass(frozen=True)
class Record:
    """One example. Raw-text records have prompt == "" and the text in `response`."""

    prompt: str
    response: str
    source: str  # "file:record" for error messages

    @property
    def is_text(self) -> bool:
        return self.prompt == ""


def _rows_jsonl(path: Path) -> list[tuple[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    return rows


def _rows_json(path: Path) -> list[tuple[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{path}: expected a list of records (or an object holding one list)")
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records")
    return [(f"record {i}", row) for i, row in enumerate(data)]


def _rows_csv(path: Path) -> list[tuple[str, Any]]:
    with open(path, encoding="utf-8", newline="") as handle:
        # header is line 1, so record i sits on line i + 2
        return [(f"line {i + 2}", row) for i, row in enumerate(csv.DictReader(handle))]


def _rows_parquet(path: Path) -> list[tuple[str, Any]]:
    import pyarrow.parquet  # comes with `datasets`; read directly, without a datasets cache

    try:
        table = pyarrow.parquet.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types; report the cause
        raise DataError(f"{path}: could not read Parquet ({type(exc).__name__}: {exc})") from None
    return [(f"record {i}", row) for i, row in enumerate(table.to_pylist())]


def read_rows(path: Path) -> list[tuple[str, Any]]:
    """(where, row) pairs of a JSONL, JSON, CSV or Parquet file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _rows_jsonl(path)
    if suffix == ".json":
        try:
            return _rows_json(path)
        except DataError:
            # Some public sets (TOFU on the Hugging Face hub) store JSON lines under a .json name.
            return _rows_jsonl(path)
    if suffix == ".csv":
        return _rows_csv(path)
    if suffix == ".parquet":
        return _rows_parquet(path)
    raise DataError(f"{path}: unknown format '{suffix}' (use .jsonl, .json, .csv or .parquet)")


def _rows_hub(name: str, cfg: DatasetConfig) -> list[tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(name, cfg.subset, split=cfg.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; report the cause
        raise DataError(f"{name}: could not load ({type(exc).__name__}: {exc})") from None
    return [(f"record {i}", row) for i, row in enumerate(ds)]


def _field(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if value is None:
        raise DataError(f"{where}: missing field '{name}' (fields: {', '.join(map(str, row))})")
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be text, got {type(value).__name__}")
    return value


def dataset_rows(cfg: DatasetConfig, role: str = "data") -> list[tuple[str, dict]]:
    """(where, row) of a data set's first `limit` rows; `where` names the file and record."""
    source = cfg.path
    if source.startswith("hf:"):
        rows = _rows_hub(source[3:], cfg)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{role} data file not found: {path}")
        rows = read_rows(path)
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    out = []
    for where, row in rows:
        where = f"{source}: {where}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with fields, got {type(row).__name__}")
        out.append((where, row))
    return out


def read_records(cfg: DatasetConfig, role: str = "data") -> list[Record]:
    """Read and validate every record; errors name the file, record and field."""
    source = cfg.path
    records = []
    for where, row in dataset_rows(cfg, role):
        if cfg.prompt_field in row or cfg.response_field in row:
            prompt = _field(row, cfg.prompt_field, where)
            response = _field(row, cfg.response_field, where)
            if not prompt.strip():
                raise DataError(f"{where}: field '{cfg.prompt_field}' is empty")
        elif cfg.text_field in row:
            prompt, response = "", _field(row, cfg.text_field, where)
        else:
            raise DataError(
                f"{where}: needs fields '{cfg.prompt_field}' and '{cfg.response_field}', "
                f"or '{cfg.text_field}' (found: {', '.join(map(str, row))}); "
                "set data.<set>.prompt_field/response_field/text_field to map yours"
            )
        if not response.strip():
            raise DataError(f"{where}: the response/text is empty; nothing to learn or unlearn")
        records.append(Record(prompt=prompt, response=response, source=where))
    if not records:
        raise DataError(f"{role} set {source} has no records")
    return records
