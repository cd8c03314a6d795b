"""Read the rows of a JSONL, JSON, CSV or Parquet file as (where, row) pairs.

Data files come from users and the web, so every failure is a `DataError` naming the file
and the line: text that is not UTF-8 (a binary file, a Latin-1 export), JSON nested too deep
for Python's parser, a CSV row cut short. A UTF-8 byte-order mark (Excel's CSV export) is
skipped. `limit` stops JSONL and CSV reading after that many rows, so a 10-row look at a
huge file reads 10 rows; JSON and Parquet must be parsed whole.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lm_unlearn.errors import DataError

Rows = list[tuple[str, Any]]
SHOWN = 120  # longest value quoted in an error message
SHOWN_FIELDS = 20  # most field names listed in an error message


def shorten(value: Any, limit: int = SHOWN) -> str:
    """`value` as text for an error message, cut to `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def field_names(row: dict) -> str:
    """The row's field names for an error message, at most SHOWN_FIELDS, each shortened."""
    names = [shorten(str(k), 40) for k in list(row)[:SHOWN_FIELDS]]
    more = len(row) - len(names)
    return ", ".join(names) + (f", … ({more} more)" if more > 0 else "") if names else "none"


def _not_utf8(path: Path, where: str, exc: UnicodeDecodeError) -> DataError:
    bad = exc.object[exc.start : exc.start + 1].hex()
    return DataError(
        f"{path}: {where}is not UTF-8 text (byte 0x{bad}); is it a binary file? "
        "Save it as UTF-8 (or convert it with `iconv -t utf-8`)"
    )


def _json(text: str, path: Path, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno} column {exc.colno}" if not where else f"column {exc.colno}"
        raise DataError(f"{path}: {where}not valid JSON ({exc.msg}: {at})") from None
    except RecursionError:
        raise DataError(f"{path}: {where}JSON is nested too deeply to read") from None


def _rows_jsonl(path: Path, limit: int | None) -> Rows:
    rows: Rows = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if limit is not None and len(rows) >= limit:
                break
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, f"line {number} ", exc) from None
            if line.strip():
                rows.append((f"line {number}", _json(line, path, f"line {number} is ")))
    return rows


def decode_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _not_utf8(path, f"line {line} ", exc) from None


def _first_line_is_json(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        json.loads(first)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def _rows_json(path: Path, limit: int | None) -> Rows:
    text = decode_text(path)
    stripped = text.lstrip()
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        # Some public sets (TOFU on the Hugging Face hub) store JSON lines under a .json name.
        if stripped.startswith("{") and _first_line_is_json(stripped):
            return _rows_jsonl(path, limit)
        data = _json(text, path, "")  # raises with the JSON error's line and column
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{path}: expected a list of records (or an object holding one list)")
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records, got {type(data).__name__}")
    return [(f"record {i}", row) for i, row in enumerate(data[:limit])]


def _csv_rows(path: Path, handle: io.TextIOBase) -> Iterator[tuple[str, dict]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        return
    for values in reader:
        if not values:
            continue
        where = f"line {reader.line_num}"  # the row's last line; quoted fields may span lines
        if len(values) != len(header):
            raise DataError(
                f"{path}: {where} has {len(values)} of the header's {len(header)} columns; "
                "is the row cut short, or a quote left open?"
            )
        yield where, dict(zip(header, values))


def _rows_csv(path: Path, limit: int | None) -> Rows:
    rows: Rows = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        try:
            for row in itertools.islice(_csv_rows(path, handle), limit):
                rows.append(row)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, f"near row {len(rows) + 2} ", exc) from None
        except csv.Error as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    return rows


def _rows_parquet(path: Path, limit: int | None) -> Rows:
    import pyarrow.parquet  # comes with `datasets`; read directly, without a datasets cache

    try:
        table = pyarrow.parquet.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types; report the cause
        cause = f"{type(exc).__name__}: {shorten(str(exc))}"
        raise DataError(f"{path}: could not read Parquet ({cause})") from None
    if limit is not None:
        table = table.slice(0, limit)
    return [(f"record {i}", row) for i, row in enumerate(table.to_pylist())]


READERS = {
    ".jsonl": _rows_jsonl,
    ".ndjson": _rows_jsonl,
    ".json": _rows_json,
    ".csv": _rows_csv,
    ".parquet": _rows_parquet,
}


def read_rows(path: Path, limit: int | None = None) -> Rows:
    """(where, row) pairs of a JSONL, JSON, CSV or Parquet file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in READERS:
        known = ".jsonl, .json, .csv or .parquet"
        raise DataError(f"{path}: unknown format '{shorten(suffix, 20)}' (use {known})")
    return READERS[suffix](path, limit)
