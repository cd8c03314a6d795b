"""TOFU (Maini et al., 2024): QA about fictitious authors, one file per split.

The splits are forget01/05/10, retain90/95/99, their `_perturbed` versions, ...

Fields used: `question`, `answer`; optional `paraphrased_answer` (text) and
`perturbed_answer` (list of texts), present in the `_perturbed` files. One input file
becomes `ROLE.jsonl` (ROLE: --role, default the input's name, e.g. forget10); the optional
fields are kept beside prompt/response, and a file that has them also gives
`ROLE_paraphrased.jsonl` (the question with the paraphrased answer).
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, text, text_list
from lm_unlearn.scenarios.writer import DataFile

NAME = "TOFU"


def _role_of(name: str) -> str:
    for word in ("forget", "retain", "heldout"):
        if name.startswith(word):
            return "perturbed" if name.endswith("_perturbed") else word
    return name


def convert(path: Path, role: str | None = None) -> list[DataFile]:
    role = role or path.stem
    main = DataFile(f"{role}.jsonl", _role_of(role), f"TOFU {path.name}: question/answer")
    para = DataFile(
        f"{role}_paraphrased.jsonl", "paraphrased", f"TOFU {path.name}: question/paraphrased answer"
    )
    rows = read_rows(path)
    # The first record decides whether this is a `_perturbed` file; then every record needs the fields.
    has_para = "paraphrased_answer" in rows[0][1]
    has_pert = "perturbed_answer" in rows[0][1]
    for where, row in rows:
        record = {"prompt": text(row, "question", where, NAME), "response": text(row, "answer", where, NAME)}
        if has_para:
            record["paraphrased_answer"] = text(row, "paraphrased_answer", where, NAME)
            para.rows.append({"prompt": record["prompt"], "response": record["paraphrased_answer"]})
        if has_pert:
            record["perturbed_answers"] = text_list(row, "perturbed_answer", where, NAME)
        main.rows.append(record)
    return [main, para]
