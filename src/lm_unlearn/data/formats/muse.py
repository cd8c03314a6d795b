"""MUSE (Shi et al., 2024): news and book corpora as raw text, knowledge QA and verbatim prompts.

Each of the three forms converts to our JSONL:

- raw text (`raw/forget.txt`, or JSONL/JSON records with `text`): split at blank lines and
  packed into chunks of at most CHUNK_WORDS words, as raw-text records -> `STEM.jsonl`;
- knowmem QA (`knowmem/*_qa.json`: `question`, `answer`) -> `STEM_knowmem.jsonl`;
- verbmem (`verbmem/forget.json`: `prompt`, `gt`, the true continuation) -> prompt/response
  extraction pairs, `STEM_verbmem.jsonl`.

The form is read from the file: `.txt` is raw text, otherwise the first record's fields decide.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, text
from lm_unlearn.errors import DataError
from lm_unlearn.scenarios.writer import DataFile

NAME = "MUSE"
CHUNK_WORDS = 200  # about 260 tokens: one chunk fits a training example of the default length


def chunk_text(raw: str, max_words: int = CHUNK_WORDS) -> list[str]:
    """Pack blank-line-separated paragraphs into chunks of at most `max_words` words."""
    chunks: list[str] = []
    current: list[str] = []
    for paragraph in raw.split("\n\n"):
        words = paragraph.split()
        while words:
            room = max_words - len(current)
            if room <= 0:
                chunks.append(" ".join(current))
                current, room = [], max_words
            current += words[:room]
            words = words[room:]
    if current:
        chunks.append(" ".join(current))
    return chunks


def _role_of(stem: str, kind: str) -> str:
    if kind == "verbmem":
        return "extraction"
    if kind == "knowmem":
        return "qa"
    return next((w for w in ("forget", "retain", "holdout") if stem.startswith(w)), "text")


def convert(path: Path, role: str | None = None) -> list[DataFile]:
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError(f"input file not found: {path}")
        rows = [{"text": c} for c in chunk_text(path.read_text(encoding="utf-8"))]
        if not rows:
            raise DataError(f"{path}: the text file is empty")
        name = role or path.stem
        return [DataFile(f"{name}.jsonl", _role_of(name, "raw"), f"MUSE raw text {path.name}, chunked", rows)]
    records = read_rows(path)
    first_where, first = records[0]
    if "gt" in first or "prompt" in first:
        kind, fields = "verbmem", ("prompt", "gt")
    elif "question" in first or "answer" in first:
        kind, fields = "knowmem", ("question", "answer")
    elif "text" in first:
        kind, fields = "raw", ("text",)
    else:
        raise DataError(
            f"{first_where}: not a MUSE record: expected fields 'text' (raw), 'question'/'answer' "
            f"(knowmem) or 'prompt'/'gt' (verbmem); found: {', '.join(map(str, first)) or 'none'}"
        )
    name = role or (path.stem if kind == "raw" else f"{path.stem}_{kind}")
    out = DataFile(f"{name}.jsonl", _role_of(name, kind), f"MUSE {kind} {path.name}")
    for where, row in records:
        values = [text(row, f, where, f"MUSE {kind}") for f in fields]
        if kind == "raw":
            out.rows += [{"text": c} for c in chunk_text(values[0])]
        else:
            out.rows.append({"prompt": values[0], "response": values[1]})
    return [out]
