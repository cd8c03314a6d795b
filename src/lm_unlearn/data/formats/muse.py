"""MUSE (Shi et al., 2024): news and book corpora as raw text, knowledge QA and verbatim prompts.

Each of MUSE's published forms converts to our JSONL:

- raw text: `raw/forget.json`, `raw/retain*.json` (JSON lists of strings, one document per
  string), records with `text`, or a `.txt` file (one document): each document is split at
  blank lines and packed into chunks of at most CHUNK_WORDS words, never across documents,
  as raw-text records -> `STEM.jsonl`;
- privacy-leak sets `privleak/*.json` (lists of strings, like raw) -> `STEM_privleak.jsonl`;
- knowmem QA (`knowmem/*_qa.json` and the in-context examples `*_qa_icl.json`: `question`,
  `answer`) -> `STEM_knowmem.jsonl`;
- verbmem (`verbmem/forget.json`: `prompt`, `gt`, the true continuation) -> prompt/response
  extraction pairs, `STEM_verbmem.jsonl`.

The form is read from the file: `.txt` is raw text, a list of strings is raw (privleak when
the file sits in a `privleak` folder), otherwise the first record's fields decide. Roles come
from the name's split: forget_qa -> forget_qa, retain2_qa -> retain_qa, forget_qa_icl ->
forget_qa_icl, holdout -> heldout, retain1 -> retain, forget verbmem -> extraction,
privleak/holdout -> heldout_privleak.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import read_any, role_of, split_of, text
from lm_unlearn.data.readers import decode_text, field_names, shorten
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


def _role(name: str, kind: str) -> str:
    if kind == "verbmem":
        return "extraction" if split_of(name) == "forget" else role_of(name, "extraction")
    if kind == "knowmem":  # forget_qa_icl.json holds the in-context examples for forget_qa.json
        return role_of(name, "qa_icl" if "icl" in name.lower().split("_") else "qa")
    return role_of(name, "privleak" if kind == "privleak" else "")


def _documents(path: Path) -> list[tuple[str, str]]:
    """(where, text) of a `.txt` file (one document) or a list of strings."""
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError(f"input file not found: {path}")
        return [(str(path), decode_text(path))]
    return [(where, row) for where, row in read_any(path) if isinstance(row, str)]


def _form(path: Path, first_where: str, first) -> tuple[str, tuple[str, ...]]:
    if isinstance(first, str) or path.suffix.lower() == ".txt":
        return ("privleak" if path.parent.name == "privleak" else "raw"), ()
    if not isinstance(first, dict):
        raise DataError(
            f"{first_where}: expected a text or an object with fields, got {type(first).__name__}"
        )
    if "gt" in first or "prompt" in first:
        return "verbmem", ("prompt", "gt")
    if "question" in first or "answer" in first:
        return "knowmem", ("question", "answer")
    if "text" in first:
        return "raw", ("text",)
    raise DataError(
        f"{first_where}: not a MUSE record: expected a text (raw, privleak), fields 'text' (raw), "
        f"'question'/'answer' (knowmem) or 'prompt'/'gt' (verbmem); found: {field_names(first)}"
    )


def _chunks(where: str, document) -> list[dict]:
    if not isinstance(document, str) or not document.strip():
        raise DataError(f"{where}: expected a non-empty text (one document), got {shorten(document, 60)}")
    return [{"text": c} for c in chunk_text(document)]


def convert(path: Path, role: str | None = None) -> list[DataFile]:
    records = _documents(path) if path.suffix.lower() == ".txt" else read_any(path)
    kind, fields = _form(path, *records[0])
    name = role or (path.stem if kind == "raw" else f"{path.stem}_{kind}")
    out = DataFile(f"{name}.jsonl", _role(name, kind), f"MUSE {kind} {path.name}")
    for where, row in records:
        if kind in ("raw", "privleak") and not fields:
            out.rows += _chunks(where, row)
        elif not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with fields, got {type(row).__name__}")
        elif kind == "raw":
            out.rows += _chunks(where, text(row, "text", where, "MUSE raw"))
        else:
            values = [text(row, f, where, f"MUSE {kind}") for f in fields]
            out.rows.append({"prompt": values[0], "response": values[1]})
    if not out.rows:
        raise DataError(f"{path}: no text to convert")
    return [out]
