"""TOFU (Maini et al., 2024): QA about fictitious authors, one file per split.

The splits are forget01/05/10, retain90/95/99, holdout01/05/10, their `_perturbed`
versions, real_authors and world_facts.

Fields used: `question`, `answer`; optional `paraphrased_answer` (text) and
`perturbed_answer` (list of texts), present in the `_perturbed` files. One input file
becomes `NAME.jsonl` (NAME: --role, default the input's name, e.g. forget10); the optional
fields are kept beside prompt/response, and a file that has them also gives
`NAME_paraphrased.jsonl` (the question with the paraphrased answer).

The role in scenario.json comes from the name's split: forget10 -> forget,
forget10_perturbed -> forget_perturbed, retain_perturbed -> retain_perturbed, holdout10 ->
heldout; a name without a split prefix (real_authors) is its own role.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import read_rows, role_of, text, text_list
from lm_unlearn.scenarios.writer import DataFile

NAME = "TOFU"


def convert(path: Path, role: str | None = None) -> list[DataFile]:
    name = role or path.stem
    kind = "perturbed" if name.endswith("_perturbed") else ""
    main = DataFile(f"{name}.jsonl", role_of(name, kind), f"TOFU {path.name}: question/answer")
    para = DataFile(
        f"{name}_paraphrased.jsonl",
        role_of(name, "paraphrased"),
        f"TOFU {path.name}: question/paraphrased answer",
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
