"""Concept data of "Dissecting Fine-Tuning Unlearning in Large Language Models" (Hong et al., 2024)
and its ConceptVectors benchmark, in the layout the authors publish.

One record per concept:

  id, Concept        an identifier (an int; `ID` in some ConceptVectors files) and the name
  Layer, Dim         the located concept vector: MLP value vector Dim of layer Layer
  wikipedia_content  an encyclopedia text about the concept
  QA                 questions about the concept (strings, as " What is X?\\n")
  QA_with_answers    "Question:  ...?\\n\\n Answer:  ..." strings: the original model's own answers
                     (in Dissecting-FT-Unlearning's data/*_answers.json, not in ConceptVectors)
  text_completion    [{First_half, Second_half}] passages to continue
  unrelated_QA       questions on other topics (strings)
  answers_tokens_num the answers' token counts (not used)

A file may hold one record (JSON object), a list of them (JSON) or one per line (JSONL);
`--concept NAME` picks one. Questions given as {question, answer} objects are read too.

Conversion: `forget.jsonl` (to unlearn) holds the concept's answered QA, completions and
text (chunked); `forget_qa.jsonl` the concept's questions, with the original's answers from
`QA_with_answers` when present, else the questions alone; `extraction.jsonl` the
completions; `unrelated.jsonl` the unrelated questions; `retain.jsonl` the unrelated QA
that has answers (none in the published layout); `concept_vectors.jsonl` the id, Layer and
Dim of each concept. Question-only prompts are scored against the original model's own
generation (`bleu_vs_original`), as the paper scores behaviour: BLEU against the original.
The authors prompt as "Question: {q}\\n Answer:"; `template: plain` is the closest of ours.
"""

from __future__ import annotations

import json
from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, text
from lm_unlearn.data.formats.muse import chunk_text
from lm_unlearn.data.readers import decode_text, field_names, shorten
from lm_unlearn.errors import DataError
from lm_unlearn.scenarios.writer import DataFile

NAME = "concept (Dissecting Fine-Tuning Unlearning)"


def _rows(path: Path) -> list[tuple[str, dict]]:
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = json.loads(decode_text(path))
        except (json.JSONDecodeError, RecursionError):
            data = None  # read_rows reports it with line and column
        if isinstance(data, dict) and "Concept" in data:  # one concept, not a list
            return [(f"{path}: record 0", data)]
    return read_rows(path)


def _items(row: dict, name: str, where: str) -> list:
    items = row.get(name)
    if items is None:
        raise DataError(
            f"{where}: missing field '{name}' (fields: {field_names(row)}); is this a {NAME} file?"
        )
    if not isinstance(items, list) or not items:
        raise DataError(f"{where}: field '{name}' must be a non-empty list, got {shorten(items, 60)}")
    return items


def questions(row: dict, name: str, where: str) -> list[dict]:
    """`name`'s questions: strings, or {question, answer} objects; as prompt(/response) rows."""
    out = []
    for i, item in enumerate(_items(row, name, where)):
        at = f"{where}: {name}[{i}]"
        if isinstance(item, str) and item.strip():
            out.append({"prompt": item.strip()})
        elif isinstance(item, dict):
            pair = {"prompt": text(item, "question", at, NAME)}
            if item.get("answer") is not None:
                pair["response"] = text(item, "answer", at, NAME)
            out.append(pair)
        else:
            raise DataError(
                f"{at}: field '{name}' must hold questions (texts) or {{question, answer}} objects, "
                f"got {shorten(item, 60)}"
            )
    return out


def answered(row: dict, where: str) -> list[dict]:
    """QA_with_answers' "Question: q\\n Answer: a" strings as prompt/response rows."""
    out = []
    for i, item in enumerate(_items(row, "QA_with_answers", where)):
        at = f"{where}: QA_with_answers[{i}]"
        if not isinstance(item, str) or "Answer:" not in item:
            raise DataError(
                f"{at}: field 'QA_with_answers' must hold texts 'Question: ...\\n Answer: ...', "
                f"got {shorten(item, 80)}"
            )
        question, _, answer = item.partition("Answer:")
        question = question.strip().removeprefix("Question:").strip()
        if not question or not answer.strip():
            raise DataError(f"{at}: the question or the answer is empty: {shorten(item, 80)}")
        out.append({"prompt": question, "response": answer.strip()})
    return out


def completions(row: dict, where: str) -> list[dict]:
    out = []
    for i, item in enumerate(_items(row, "text_completion", where)):
        at = f"{where}: text_completion[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{at}: expected an object with 'First_half' and 'Second_half'")
        out.append(
            {"prompt": text(item, "First_half", at, NAME), "response": text(item, "Second_half", at, NAME)}
        )
    return out


def vector(row: dict, where: str, name: str) -> dict | None:
    """The concept's located vector {id, concept, layer, dim}, when the record has one."""
    layer, dim = row.get("Layer"), row.get("Dim")
    if layer is None and dim is None:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (layer, dim)):
        raise DataError(
            f"{where}: fields 'Layer' and 'Dim' must be whole numbers >= 0, got {layer!r}, {dim!r}"
        )
    ident = row["id"] if "id" in row else row.get("ID")  # LLaMA files say id, OLMo files ID
    return {"id": ident, "concept": name, "layer": layer, "dim": dim}


def _files() -> dict[str, DataFile]:
    return {
        "forget": DataFile(
            "forget.jsonl", "forget", "the concept's answered QA, completions and text (to unlearn)"
        ),
        "forget_qa": DataFile(
            "forget_qa.jsonl",
            "forget_qa",
            "the concept's questions, with the original model's answers if given",
        ),
        "extraction": DataFile(
            "extraction.jsonl", "extraction", "first half / second half of concept passages"
        ),
        "unrelated": DataFile("unrelated.jsonl", "unrelated", "unrelated questions (utility; never trained)"),
        "retain": DataFile("retain.jsonl", "retain", "unrelated QA that has answers (to keep)"),
        "vectors": DataFile(
            "concept_vectors.jsonl", "concept_vector", "each concept's located MLP value vector"
        ),
    }


def _add(files: dict[str, DataFile], row: dict, where: str, name: str) -> None:
    qa = questions(row, "QA", where)
    if row.get("QA_with_answers") is not None:  # the original model's answers to those questions
        qa = answered(row, where)
    passages = completions(row, where)
    content = text(row, "wikipedia_content", where, NAME)
    unrelated = questions(row, "unrelated_QA", where)
    files["forget"].rows += (
        [q for q in qa if "response" in q] + passages + [{"text": c} for c in chunk_text(content)]
    )
    files["forget_qa"].rows += qa
    files["extraction"].rows += passages
    files["unrelated"].rows += unrelated
    files["retain"].rows += [q for q in unrelated if "response" in q]
    located = vector(row, where, name)
    if located is not None:
        files["vectors"].rows.append(located)


def convert(path: Path, role: str | None = None, concept: str | None = None) -> list[DataFile]:
    files, names = _files(), []
    for where, row in _rows(path):
        name = text(row, "Concept", where, NAME)
        names.append(name)
        if concept is None or name.lower() == concept.lower():
            _add(files, row, where, name)
    if not files["forget"].rows:
        shown = shorten(", ".join(names), 400)
        raise DataError(f"{path}: no concept named {shorten(concept, 80)!r}; the file has: {shown}")
    return list(files.values())
