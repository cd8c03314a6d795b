"""TruthfulQA (Lin et al., 2022): questions that people often answer falsely.

Accepts the original CSV columns (`Question`, `Best Answer`, `Correct Answers`,
`Incorrect Answers`; answer lists separated by ";") and the Hugging Face `generation`
fields (`question`, `best_answer`, `correct_answers`, `incorrect_answers`; lists).
Each incorrect answer becomes a forget record (the falsehood to unlearn), the best answer
a retain record for the same question, and `perturbed.jsonl` holds the question with its
best answer, another correct answer (`paraphrased_answer`) and the incorrect ones
(`perturbed_answers`) for truth-ratio evaluation.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, text, text_list
from lm_unlearn.scenarios.writer import DataFile

NAME = "TruthfulQA"
CSV = ("Question", "Best Answer", "Correct Answers", "Incorrect Answers")
HF = ("question", "best_answer", "correct_answers", "incorrect_answers")


def convert(path: Path, role: str | None = None) -> list[DataFile]:
    forget = DataFile("forget.jsonl", "forget", "each question with one incorrect answer (to unlearn)")
    retain = DataFile("retain.jsonl", "retain", "each question with its best answer (to keep)")
    perturbed = DataFile(
        "perturbed.jsonl", "perturbed", "question, best answer, another correct answer, incorrect answers"
    )
    for where, row in read_rows(path):
        names = CSV if "Question" in row else HF
        question = text(row, names[0], where, NAME)
        best = text(row, names[1], where, NAME)
        correct = text_list(row, names[2], where, NAME, sep=";")
        incorrect = text_list(row, names[3], where, NAME, sep=";")
        forget.rows += [{"prompt": question, "response": a} for a in incorrect]
        retain.rows.append({"prompt": question, "response": best})
        others = [a for a in correct if a != best]
        perturbed.rows.append(
            {
                "prompt": question,
                "response": best,
                "paraphrased_answer": others[0] if others else best,
                "perturbed_answers": incorrect,
            }
        )
    return [forget, retain, perturbed]
