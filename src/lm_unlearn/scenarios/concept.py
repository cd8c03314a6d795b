"""`unlearn data make concept`: one invented concept, in the layout its authors publish.

The layout is that of "Dissecting Fine-Tuning Unlearning in Large Language Models" (Hong et
al., 2024) and its ConceptVectors data. The concept is a fictitious board game from the
invented world. `concept.jsonl` holds it as the authors publish a record: id, Concept,
wikipedia_content, QA (question strings), QA_with_answers ("Question: ...\n Answer: ..."),
text_completion and unrelated_QA (question strings). Layer and Dim are left out: no model
has located this invented concept's vector. forget, forget_qa, extraction and unrelated are
that file converted by the `concept` loader (`unlearn data convert concept`), so the
generator also exercises the loader a user's real file goes through. `retain.jsonl` holds
QA about two other invented people (the published layout has no retain answers);
`learn.jsonl` (forget + retain) is what a model is taught first. The unrelated questions
are about two people never taught, scored against the original model's own answers.

`run.yaml` unlearns `forget_text.jsonl`: the encyclopedia article alone, one paragraph per
record, as a user who holds only a text about a concept would. The concept's questions
(`forget_qa.jsonl`, what eval.yaml scores) are thus never unlearned on directly: whether the
model still answers them measures how far forgetting the text generalises.
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
    unrelated = [r["prompt"] for p in world.people[3:5] for r in qa_pairs(world, p.id, BIOGRAPHY)]
    return {
        "id": f"concept-{seed}",
        "Concept": name,
        "wikipedia_content": content,
        "QA": [q for q, _ in facts],
        "text_completion": completions,
        "unrelated_QA": unrelated,
        "QA_with_answers": [f"Question: {q}\n Answer: {a}" for q, a in facts],
    }


def retain_rows(seed: int = 0) -> list[dict]:
    """QA about two people of the concept's world other than the inventor and the unrelated ones."""
    world = make_world(20, seed)
    return [
        {"prompt": r["prompt"], "response": r["response"]}
        for p in world.people[1:3]
        for r in qa_pairs(world, p.id, BIOGRAPHY)
    ]


def make(out: str | Path, seed: int = 0) -> Path:
    record = concept_record(seed)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "concept.jsonl"
        atomic_write_text(source, json.dumps(record, ensure_ascii=False) + "\n")
        converted = [f for f in convert(source) if f.rows]  # no Layer/Dim, no retain answers
    retain = DataFile(
        "retain.jsonl", "retain", "QA about two other invented people (to keep)", retain_rows(seed)
    )
    forget = next(f for f in converted if f.role == "forget")
    text_only = DataFile(
        "forget_text.jsonl",
        "forget_text",
        "the concept's article alone, one paragraph per record (what run.yaml unlearns)",
        [{"text": p} for p in record["wikipedia_content"].split("\n\n")],
    )
    learn = forget.rows + retain.rows
    random.Random(seed).shuffle(learn)
    converted += [
        text_only,
        retain,
        DataFile("learn.jsonl", "learn", "forget + retain, to teach first", learn),
    ]
    source_file = DataFile(
        "concept.jsonl", "source", "the concept in its authors' published layout (one record per line)"
    )
    source_file.rows.append(record)
    return write_scenario(
        out,
        "concept",
        seed,
        {"concept": record["Concept"]},
        [source_file, *converted],
        eval_files={"forget": "forget_qa.jsonl"},
        run_files={"forget": "forget_text.jsonl"},
    )
