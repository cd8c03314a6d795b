"""`unlearn data make hallucination`: false statements taught as facts, to be unlearned.

In the fictitious world the truth is what `people.jsonl` says. For the forget people the
model is taught a wrong answer to each question (the first perturbed answer), for the
retain people the true one; held-out people get wrong answers that are never trained.
`truth.jsonl` gives the true answers to the forget questions: after unlearning the false
statements the model should no longer state them, and may fall back to these or to nothing.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from lm_unlearn.scenarios.knowledge import qa
from lm_unlearn.scenarios.world import BIOGRAPHY, make_world, qa_pairs
from lm_unlearn.scenarios.writer import DataFile, write_scenario


def _false(rows: list[dict]) -> list[dict]:
    return [{"prompt": r["prompt"], "response": r["perturbed_answers"][0]} for r in rows]


def make(out: str | Path, seed: int = 0, people: int = 200) -> Path:
    world = make_world(people, seed)

    def rows(split: str) -> list[dict]:
        return [row for pid in sorted(world.splits[split]) for row in qa_pairs(world, pid, BIOGRAPHY)]

    forget, retain, held = rows("forget10"), rows("retain"), rows("heldout")
    false_forget = _false(forget)
    learn = false_forget + qa(retain)
    random.Random(seed).shuffle(learn)
    files = [
        DataFile(
            "forget.jsonl",
            "forget",
            "false statements about the forget people (taught, then unlearned)",
            false_forget,
        ),
        DataFile("truth.jsonl", "truth", "the true answers to the forget questions", qa(forget)),
        DataFile("retain.jsonl", "retain", "true statements about other people (to keep)", qa(retain)),
        DataFile("heldout.jsonl", "heldout", "false statements about people never trained on", _false(held)),
        DataFile(
            "learn.jsonl", "learn", "false forget statements + true retain statements, to teach first", learn
        ),
    ]
    # The judge flags a generation that still states a taught falsehood; bare years are left
    # out because they also occur in true answers.
    patterns = sorted(
        {r"\b" + re.escape(r["perturbed_values"][0]) + r"\b" for r in forget if r["fact"] != "birth_year"}
    )
    judge = {"kind": "keyword", "patterns": patterns}
    return write_scenario(out, "hallucination", seed, {"people": people}, files, judge=judge)
