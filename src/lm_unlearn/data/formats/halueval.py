"""HaluEval QA (Li et al., 2023): questions with a right and a plausible hallucinated answer.

Fields used: `knowledge`, `question`, `right_answer`, `hallucinated_answer`. The
hallucinated answer becomes the forget record, the right answer the retain record;
`perturbed.jsonl` pairs them for truth-ratio evaluation and `knowledge.jsonl` keeps the
supporting passages as raw text.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, text
from lm_unlearn.scenarios.writer import DataFile

NAME = "HaluEval QA"


def convert(path: Path, role: str | None = None) -> list[DataFile]:
    forget = DataFile("forget.jsonl", "forget", "questions with the hallucinated answer (to unlearn)")
    retain = DataFile("retain.jsonl", "retain", "questions with the right answer (to keep)")
    perturbed = DataFile("perturbed.jsonl", "perturbed", "question, right answer and the hallucinated one")
    knowledge = DataFile("knowledge.jsonl", "knowledge", "the supporting knowledge passages, as text")
    for where, row in read_rows(path):
        passage = text(row, "knowledge", where, NAME)
        question = text(row, "question", where, NAME)
        right = text(row, "right_answer", where, NAME)
        wrong = text(row, "hallucinated_answer", where, NAME)
        forget.rows.append({"prompt": question, "response": wrong})
        retain.rows.append({"prompt": question, "response": right})
        perturbed.rows.append(
            {"prompt": question, "response": right, "paraphrased_answer": right, "perturbed_answers": [wrong]}
        )
        knowledge.rows.append({"text": passage})
    return [forget, retain, perturbed, knowledge]
