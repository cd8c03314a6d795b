"""Read prompt/response or raw-text records from JSONL, JSON, CSV, Parquet or a `datasets` name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_unlearn.config import DatasetConfig
from lm_unlearn.data.readers import field_names, read_rows, shorten
from lm_unlearn.errors import DataError

__all__ = ["Record", "dataset_rows", "read_records", "read_rows"]


@dataclass(frozen=True)
class Record:
    """One example. Raw-text records have prompt == "" and the text in `response`."""

    prompt: str
    response: str
    source: str  # "file:record" for error messages

    @property
    def is_text(self) -> bool:
        return self.prompt == ""


def _rows_hub(name: str, cfg: DatasetConfig) -> list[tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(name, cfg.subset, split=cfg.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; report the cause
        raise DataError(f"{name}: could not load ({type(exc).__name__}: {shorten(str(exc))})") from None
    if cfg.limit is not None:
        ds = ds.select(range(min(cfg.limit, len(ds))))
    return [(f"record {i}", row) for i, row in enumerate(ds)]


def _field(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if value is None:
        raise DataError(f"{where}: missing field '{name}' (fields: {field_names(row)})")
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
        rows = read_rows(path, cfg.limit)
    out = []
    for where, row in rows:
        where = f"{source}: {where}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with fields, got {type(row).__name__}")
        out.append((where, row))
    return out


def _prompt_response(row: dict, cfg: DatasetConfig, where: str, need_response: bool) -> tuple[str, str]:
    if need_response or cfg.response_field in row:
        response = _field(row, cfg.response_field, where)
    else:
        response = ""  # a question alone: scored against the original model's own answer
    prompt = _field(row, cfg.prompt_field, where)
    if not prompt.strip():
        raise DataError(f"{where}: field '{cfg.prompt_field}' is empty")
    return prompt, response


def read_records(cfg: DatasetConfig, role: str = "data", need_response: bool = True) -> list[Record]:
    """Read and validate every record; errors name the file, record and field.

    With `need_response=False` (evaluation prompts) a record may hold a prompt alone; its
    `response` is then "".
    """
    source = cfg.path
    records = []
    for where, row in dataset_rows(cfg, role):
        if cfg.prompt_field in row or cfg.response_field in row:
            prompt, response = _prompt_response(row, cfg, where, need_response)
            if need_response and not response.strip():
                raise DataError(f"{where}: the response is empty; nothing to learn or unlearn")
        elif cfg.text_field in row:
            prompt, response = "", _field(row, cfg.text_field, where)
            if not response.strip():
                raise DataError(f"{where}: the text is empty; nothing to learn or unlearn")
        else:
            raise DataError(
                f"{where}: needs fields '{cfg.prompt_field}' and '{cfg.response_field}', "
                f"or '{cfg.text_field}' (found: {field_names(row)}); "
                "set data.<set>.prompt_field/response_field/text_field to map yours"
            )
        records.append(Record(prompt=prompt, response=response, source=where))
    if not records:
        raise DataError(f"{role} set {source} has no records")
    return records
