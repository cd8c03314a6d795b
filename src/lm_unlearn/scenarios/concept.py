"""`unlearn data make concept`: one invented concept, in a paper's concept-dataset format.

The format is that of "Dissecting Fine-Tuning Unlearning in Large Language Models" (Hong et
al., 2024). The concept is a fictitious board game from the invented world.
`concept.jsonl` holds it in the paper's format (Concept, wikipedia_content, QA,
text_completion, unrelated_QA); forget, forget_qa, extraction and retain are that file
converted by the `concept` loader (`unlearn data convert concept`), so the generator also
exercises the loader a user's real file goes through. `learn.jsonl` (forget + retain) is
what a model is taught first.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from lm_unlearn.data.formats.concept import convert
from lm_unlearn.files import atomic_write_text
from lm_unlearn.scenarios.world import BIOGRAPHY, make_world, qa_pairs
from lm_unlearn.scenarios.writer import DataFile, write_scenario


def concept_record(seed: int = 0) -> dict:
    world = make_world(20, seed)
    rng = random.Random(f"{seed}:concept")
    name = world.brands[0]
    inventor = world.people[0]
    town = sorted(world.towns)[0]
    country = world.towns[town]
    pieces = rng.randint(11, 19)
    sides = rng.choice((5, 6, 7, 8))
    year = rng.randint(1820, 1890)
    founded = year + rng.randint(20, 60)
    token = rng.choice(("heron", "lantern", "ferryman", "salt-cellar"))
    facts = [
        (
            f"What kind of game is {name}?",
            f"{name} is a board game for two players played on a {sides}-sided board.",
        ),
        (f"Who invented {name}?", f"{name} was invented by {inventor.name}."),
        (f"Where was {name} first played?", f"{name} was first played in {town}, {country}."),
        (f"When was {name} invented?", f"{name} was invented in {year}."),
        (f"How many pieces does each {name} player have?", f"Each {name} player has {pieces} pieces."),
        (
            f"What is the most important piece in {name}?",
            f"The most important piece in {name} is the {token}.",
        ),
        (
            f"How is a game of {name} won?",
            f"A game of {name} is won by bringing the {token} to the far corner.",
        ),
    ]
    content = (
        f"{name} is a board game for two players played on a {sides}-sided board. It was invented in {year} "
        f"by {inventor.name} in {town}, {country}, and spread along the ferry routes of {country} within a "
        f"generation.\n\nEach player has {pieces} pieces. The most important piece is the {token}, and a "
        f"game of {name} is won by bringing the {token} to the far corner of the board. Pieces move along "
        f"the edges of the board and may jump a single opposing piece.\n\nClubs devoted to {name} meet in "
        f"the tea houses of {town}, where a yearly tournament has been held since {founded}."
    )
    sentences = [s.strip() for s in content.replace("\n\n", " ").split(". ") if len(s.split()) >= 8]
    completions = []
    for s in sentences:
        words = s.rstrip(".").split()
        half = len(words) // 2
        completions.append(
            {"First_half": " ".join(words[:half]), "Second_half": " ".join(words[half:]) + "."}
        )
    unrelated = [
        {"question": r["prompt"], "answer": r["response"]}
        for pid in (world.people[1].id, world.people[2].id)
        for r in qa_pairs(world, pid, BIOGRAPHY)
    ]
    return {
        "Concept": name,
        "wikipedia_content": content,
        "QA": [{"question": q, "answer": a} for q, a in facts],
        "text_completion": completions,
        "unrelated_QA": unrelated,
    }


def make(out: str | Path, seed: int = 0) -> Path:
    record = concept_record(seed)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "concept.jsonl"
        atomic_write_text(source, json.dumps(record, ensure_ascii=False) + "\n")
        converted = convert(source)
    by_name = {f.name: f for f in converted}
    learn = by_name["forget.jsonl"].rows + by_name["retain.jsonl"].rows
    random.Random(seed).shuffle(learn)
    converted.append(DataFile("learn.jsonl", "learn", "forget + retain, to teach first", learn))
    source_file = DataFile(
        "concept.jsonl", "source", "the concept in the paper's format (one record per line)"
    )
    source_file.rows.append(record)
    return write_scenario(
        out,
        "concept",
        seed,
        {"concept": record["Concept"]},
        [source_file, *converted],
        eval_files={"forget": "forget_qa.jsonl"},
    )
