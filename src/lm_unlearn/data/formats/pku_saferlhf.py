"""PKU-SafeRLHF (Ji et al., 2024): two answers per prompt, each labelled safe or unsafe.

Fields used: `prompt`, `response_0`, `response_1`, `is_response_0_safe`, `is_response_1_safe`.
Unsafe answers become the forget set (the behaviour to remove), safe answers the retain
set; both also become labelled judge examples (label 1 = unsafe).
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.data.formats.common import flag, read_rows, text
from lm_unlearn.scenarios.writer import DataFile

NAME = "PKU-SafeRLHF"


def convert(path: Path, role: str | None = None) -> list[DataFile]:
    forget = DataFile("forget.jsonl", "forget", "prompts with their unsafe answers (to unlearn)")
    retain = DataFile("retain.jsonl", "retain", "prompts with their safe answers (to keep)")
    judge = DataFile("judge.jsonl", "judge", "answers labelled 1 = unsafe, 0 = safe, for a judge classifier")
    seen: set[tuple[str, str]] = set()
    for where, row in read_rows(path):
        prompt = text(row, "prompt", where, NAME)
        for i in (0, 1):
            response = text(row, f"response_{i}", where, NAME)
            safe = flag(row, f"is_response_{i}_safe", where, NAME)
            if (prompt, response) in seen:  # the data set repeats some pairs; train on each once
                continue
            seen.add((prompt, response))
            (retain if safe else forget).rows.append({"prompt": prompt, "response": response})
            judge.rows.append({"text": response, "label": 0 if safe else 1})
    return [forget, retain, judge]
