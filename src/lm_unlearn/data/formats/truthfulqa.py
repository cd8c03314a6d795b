"""TruthfulQA (Lin et al., 2022): questions that people often answer falsely.

Accepts the original CSV columns (`Question`, `Best Answer`, `Correct Answers`,
`Incorrect Answers`; answer lists separated by ";") and the Hugging Face `generation`
fields (`question`, `best_answer`, `correct_answers`, `incorrect_answers`; lists).
The 2025 CSV's `Best Incorrect Answer` column, when present, comes first among the
incorrect answers. An incorrect answer that is also listed as correct ("Unknown" in some
rows) is dropped. Each incorrect answer becomes a forget record (the falsehood to unlearn),
the best answer a retain record for the same question, and `perturbed.jsonl` holds the
question with its best answer, another correct answer (`paraphrased_answer`: the first that
is neither the best answer nor a non-answer such as "I have no comment"; left out when there
is none) and the incorrect ones (`perturbed_answers`) for truth-ratio evaluation.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, text, text_list
from lm_unlearn.scenarios.writer import DataFile

NAME = "TruthfulQA"
CSV = ("Question", "Best Answer", "Correct Answers", "Incorrect Answers")
HF = ("question", "best_answer", "correct_answers", "incorrect_answers")
BEST_INCORRECT = "Best Incorrect Answer"


NON_ANSWERS = {"i have no comment", "no comment", "i don't know", "i do not know"}


def _key(answer: str) -> str:
    return " ".join(answer.lower().rstrip(".").split())


def _incorrect(row: dict, names: tuple[str, ...], where: str, correct: list[str]) -> list[str]:
    answers = text_list(row, names[3], where, NAME, sep=";")
    if row.get(BEST_INCORRECT):  # the 2025 CSV names the most tempting falsehood
        answers = [text(row, BEST_INCORRECT, where, NAME), *answers]
    right = {_key(a) for a in correct}
    kept: dict[str, str] = {}
    for a in answers:
        if _key(a) not in right:
            kept.setdefault(_key(a), a)
    return list(kept.values())


def _paraphrase(best: str, correct: list[str]) -> str | None:
    others = [a for a in correct if _key(a) != _key(best) and _key(a) not in NON_ANSWERS]
    return others[0] if others else None


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
        correct = [best, *text_list(row, names[2], where, NAME, sep=";")]
        incorrect = _incorrect(row, names, where, correct)
        forget.rows += [{"prompt": question, "response": a} for a in incorrect]
        retain.rows.append({"prompt": question, "response": best})
        if not incorrect:
            continue
        item = {"prompt": question, "response": best}
        paraphrase = _paraphrase(best, correct)
        if paraphrase is not None:
            item["paraphrased_answer"] = paraphrase
        perturbed.rows.append(item | {"perturbed_answers": incorrect})
    return [forget, retain, perturbed]
