"""Concept data of "Dissecting Fine-Tuning Unlearning in Large Language Models" (Hong et al., 2024).

One record per concept, with:

  Concept            the concept's name
  wikipedia_content  an encyclopedia text about it
  QA                 [{question, answer}]     questions about the concept
  text_completion    [{First_half, Second_half}]  passages to continue
  unrelated_QA       [{question, answer}]     questions on other topics

A file may hold one record (JSON object), a list of them (JSON) or one per line (JSONL).
Conversion: the concept's QA, completions and text (chunked) -> `forget.jsonl` (for
training), its QA alone -> `forget_qa.jsonl` (for evaluation), its completions ->
`extraction.jsonl`, the unrelated QA -> `retain.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, text
from lm_unlearn.data.formats.muse import chunk_text
from lm_unlearn.errors import DataError
from lm_unlearn.scenarios.writer import DataFile

NAME = "concept (Dissecting Fine-Tuning Unlearning)"


def _rows(path: Path) -> list[tuple[str, dict]]:
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict) and "Concept" in data:  # one concept, not a list
            return [(f"{path}: record 0", data)]
    return read_rows(path)


def _pairs(row: dict, name: str, keys: tuple[str, str], where: str) -> list[dict]:
    items = row.get(name)
    if items is None:
        raise DataError(
            f"{where}: missing field '{name}' (fields: {', '.join(map(str, row))}); is this a {NAME} file?"
        )
    if not isinstance(items, list) or not items:
        raise DataError(
            f"{where}: field '{name}' must be a non-empty list of {{{keys[0]}, {keys[1]}}} objects"
        )
    out = []
    for i, item in enumerate(items):
        at = f"{where}: {name}[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{at}: expected an object with '{keys[0]}' and '{keys[1]}'")
        out.append({"prompt": text(item, keys[0], at, NAME), "response": text(item, keys[1], at, NAME)})
    return out


def convert(path: Path, role: str | None = None, concept: str | None = None) -> list[DataFile]:
    rows = _rows(path)
    forget = DataFile("forget.jsonl", "forget", "the concept's QA, text completions and text (to unlearn)")
    forget_qa = DataFile("forget_qa.jsonl", "forget_qa", "the concept's QA alone (for evaluation)")
    extraction = DataFile("extraction.jsonl", "extraction", "first half / second half of concept passages")
    retain = DataFile("retain.jsonl", "retain", "unrelated QA (to keep)")
    names = []
    for where, row in rows:
        name = text(row, "Concept", where, NAME)
        names.append(name)
        if concept is not None and name.lower() != concept.lower():
            continue
        content = text(row, "wikipedia_content", where, NAME)
        qa = _pairs(row, "QA", ("question", "answer"), where)
        completions = _pairs(row, "text_completion", ("First_half", "Second_half"), where)
        forget.rows += qa + completions + [{"text": c} for c in chunk_text(content)]
        forget_qa.rows += qa
        extraction.rows += completions
        retain.rows += _pairs(row, "unrelated_QA", ("question", "answer"), where)
    if not forget.rows:
        raise DataError(f"{path}: no concept named {concept!r}; the file has: {', '.join(names)}")
    return [forget, forget_qa, extraction, retain]
