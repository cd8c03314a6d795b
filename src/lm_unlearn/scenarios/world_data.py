"""`unlearn data make world`: the whole fictitious world with its TOFU-style splits.

Files: `people.jsonl` (every person's record and split), and for each split
(forget01 ⊂ forget05 ⊂ forget10, retain, heldout) a QA file whose rows carry
prompt/response plus `paraphrased_prompt`, `paraphrased_answer`, `perturbed_answers`,
`person` and `fact`. `learn.jsonl` is what a model must be taught before unlearning
(everyone but the held-out people).
"""

from __future__ import annotations

import random
from pathlib import Path

from lm_unlearn.scenarios.world import BIOGRAPHY, make_world, qa_pairs
from lm_unlearn.scenarios.writer import DataFile, write_scenario

ROLES = {"forget10": "forget"}  # forget01/05 are smaller forget sets; their role is their name
DESCRIPTIONS = {
    "forget01": "QA about the 1 % forget people (subset of forget05)",
    "forget05": "QA about the 5 % forget people (subset of forget10)",
    "forget10": "QA about the 10 % forget people",
    "retain": "QA about the people kept (not in forget10, not held out)",
    "heldout": "QA about people never trained on",
}


def make(out: str | Path, seed: int = 0, people: int = 200) -> Path:
    world = make_world(people, seed)
    split_of = {}
    for split in ("forget10", "retain", "heldout"):
        split_of |= {pid: split for pid in world.splits[split]}
    rows = [
        p.as_dict()
        | {
            "split": split_of[p.id],
            "forget01": p.id in world.splits["forget01"],
            "forget05": p.id in world.splits["forget05"],
        }
        for p in world.people
    ]
    files = [DataFile("people.jsonl", "world", "every invented person, their facts and split", rows)]
    for split, description in DESCRIPTIONS.items():
        qa = [row for pid in sorted(world.splits[split]) for row in qa_pairs(world, pid, BIOGRAPHY)]
        files.append(DataFile(f"{split}.jsonl", ROLES.get(split, split), description, qa))
    learn = [r for f in files if f.name in ("forget10.jsonl", "retain.jsonl") for r in f.rows]
    random.Random(seed).shuffle(learn)
    learn = [{"prompt": r["prompt"], "response": r["response"]} for r in learn]
    files.append(
        DataFile("learn.jsonl", "learn", "everything to teach before unlearning (forget10 + retain)", learn)
    )
    return write_scenario(out, "world", seed, {"people": people}, files)
