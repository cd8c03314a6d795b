"""`unlearn data make knowledge`: TOFU-like QA about invented authors (Maini et al., 2024).

The forget set is the QA of 1, 5 or 10 % of the people; retain is the QA of every other
trained person (TOFU's retain99/95/90); held-out people are never trained. `paraphrased`
rewords the forget questions; `perturbed`/`retain_perturbed` carry a paraphrased answer
and wrong answers for the truth ratio; `unrelated` holds real-world questions the base model
answers (TOFU's "world facts"), for utility. Teach the model `learn.jsonl` first.
"""

from __future__ import annotations

import random
from pathlib import Path

from lm_unlearn.data.records import read_rows
from lm_unlearn.errors import DataError
from lm_unlearn.scenarios.world import BIOGRAPHY, biography, make_world, qa_pairs
from lm_unlearn.scenarios.writer import DataFile, write_scenario

REAL_WORLD_QA = Path(__file__).parent / "real_world_qa.jsonl"


def real_world_qa() -> list[dict]:
    """Real-world questions with one-sentence answers (capitals, science, authors)."""
    return [row for _, row in read_rows(REAL_WORLD_QA)]


def qa(rows: list[dict]) -> list[dict]:
    return [{"prompt": r["prompt"], "response": r["response"]} for r in rows]


def perturbed(rows: list[dict]) -> list[dict]:
    """Truth-ratio rows as TOFU's perturbed files: the paraphrased answer (true) and wrong
    answers in the same paraphrased form."""
    keys = ("prompt", "response", "paraphrased_answer")
    return [{k: r[k] for k in keys} | {"perturbed_answers": r["paraphrased_perturbed_answers"]} for r in rows]


def forget_question_files(forget: list[dict]) -> list[DataFile]:
    """The forget questions reworded, and their truth-ratio rows (TOFU's paraphrased and
    perturbed sets), from `world.qa_pairs` rows."""
    return [
        DataFile(
            "paraphrased.jsonl",
            "paraphrased",
            "forget questions reworded, with the original answers",
            [{"prompt": r["paraphrased_prompt"], "response": r["response"]} for r in forget],
        ),
        DataFile(
            "perturbed.jsonl", "perturbed", "forget QA with paraphrased and wrong answers", perturbed(forget)
        ),
    ]


def make(out: str | Path, seed: int = 0, people: int = 200, forget_percent: int = 10) -> Path:
    if forget_percent not in (1, 5, 10):
        raise DataError(f"--forget-percent must be 1, 5 or 10 (got {forget_percent})")
    world = make_world(people, seed)
    forget_ids = sorted(world.splits[f"forget{forget_percent:02d}"])
    trained = sorted(world.splits["forget10"] + world.splits["retain"])
    retain_ids = [pid for pid in trained if pid not in forget_ids]
    held_ids = sorted(world.splits["heldout"])

    def rows(ids: list[str]) -> list[dict]:
        return [row for pid in ids for row in qa_pairs(world, pid, BIOGRAPHY)]

    forget, retain, held = rows(forget_ids), rows(retain_ids), rows(held_ids)
    learn = qa(forget + retain) + [{"text": biography(world, pid)} for pid in trained]
    random.Random(seed).shuffle(learn)
    files = [
        DataFile("forget.jsonl", "forget", f"QA about the {forget_percent} % forget people", qa(forget)),
        DataFile("retain.jsonl", "retain", "QA about the other trained people", qa(retain)),
        DataFile("heldout.jsonl", "heldout", "QA about people never trained on", qa(held)),
        *forget_question_files(forget),
        DataFile(
            "retain_perturbed.jsonl",
            "retain_perturbed",
            "retain QA with paraphrased and wrong answers",
            perturbed(retain),
        ),
        DataFile(
            "unrelated.jsonl", "unrelated", "real-world questions the base model answers", real_world_qa()
        ),
        DataFile("learn.jsonl", "learn", "QA and biographies of all trained people, to teach first", learn),
    ]
    params = {"people": people, "forget_percent": forget_percent}
    return write_scenario(out, "knowledge", seed, params, files)
