"""`unlearn data make copyright`: an invented prose work taught verbatim, then partly forgotten.

"The Chronicles of COUNTRY" is generated from the fictitious world: chapters of sentences
built from templates about its towns, people and trading houses, so the exact wording
exists nowhere else. Chapters are split into forget (20 %), retain (60 %) and unseen
(20 %, never trained: non-members for membership inference and an extraction baseline).
`extraction.jsonl` pairs the first PREFIX_WORDS words of each forget chapter with the
next CONTINUATION_WORDS words (the verbatim-extraction test of MUSE, Shi et al., 2024).
"""

from __future__ import annotations

import random
from pathlib import Path

from lm_unlearn.scenarios.world import make_world
from lm_unlearn.scenarios.writer import DataFile, write_scenario

PREFIX_WORDS = 32
CONTINUATION_WORDS = 32

SENTENCES = (
    "In the {ordinal} winter after the flood, {person} left {town} with nothing but a {thing}.",
    "The road to {town2} ran along the {river} for {n} days, and {person} counted every bridge.",
    "At the market of {town}, the merchants of the {brand} house sold {goods} by lamplight.",
    "{person} once said that {town2} smelled of {smell} and rumour, and nobody argued.",
    "The council of {country} met in the {ordinal} month and argued until the candles ran out.",
    "When the bells of {town} rang {n} times, the ferrymen refused to cross the {river}.",
    "{person2} kept a ledger of every debt owed to the {brand} house, written in green ink.",
    "No one in {town2} remembers who built the {colour} tower, but everyone claims a great-uncle did.",
    "The harvest failed twice, and {person} traded a {thing} for a sack of {goods}.",
    "Letters from {person2} arrived late and water-stained, always ending with the word '{word}'.",
    "By the {ordinal} year of the truce, {country} had {n} lighthouses and not one keeper.",
    "The children of {town} sang a song about the {river}, though none of them had seen it.",
    "{person} and {person2} quarrelled over a {thing} for {n} years and were buried side by side.",
    "Travellers from {town2} brought {goods}, news of storms and a new way of folding maps.",
    "The {brand} house lent money to the council, and the council lent the {brand} house its seal.",
    "Every spring the {colour} kites of {town} were flown over the {river} to frighten the herons.",
)
FILL = {
    "ordinal": ("first", "second", "third", "fifth", "seventh", "ninth", "eleventh"),
    "thing": (
        "brass compass",
        "cracked lantern",
        "wooden flute",
        "bolt of blue cloth",
        "tin whistle",
        "salt jar",
    ),
    "goods": ("dried figs", "lamp oil", "river pearls", "copper nails", "barley", "indigo dye"),
    "smell": ("tar", "wet wool", "cinnamon", "pine smoke", "old paper"),
    "colour": ("grey", "ochre", "white", "crimson", "green"),
    "n": ("three", "four", "six", "seven", "nine", "twelve"),
}


def chronicle(seed: int = 0, count: int = 60, people: int = 40) -> tuple[str, list[str]]:
    """The work's title and `count` chapters of 9-12 template sentences each."""
    world = make_world(people, seed)
    rng = random.Random(f"{seed}:copyright")
    country = world.countries[0]
    rivers = [f"River {n}" for n in world.countries[1:4]]
    words = [p.last.lower() for p in world.people[:10]]
    out = []
    for k in range(count):
        sentences = []
        for template in rng.sample(SENTENCES, rng.randint(9, 12)):
            fill = {key: rng.choice(options) for key, options in FILL.items()}
            p1, p2 = rng.sample(world.people, 2)
            t1, t2 = rng.sample(sorted(world.towns), 2)
            fill |= {
                "person": p1.name,
                "person2": p2.name,
                "town": t1,
                "town2": t2,
                "country": country,
                "river": rng.choice(rivers),
                "brand": rng.choice(world.brands),
                "word": rng.choice(words),
            }
            sentences.append(template.format(**fill))
        out.append(f"Chapter {k + 1}. " + " ".join(sentences))
    return f"The Chronicles of {country}", out


def extraction_pairs(texts: list[str]) -> list[dict]:
    pairs = []
    for t in texts:
        words = t.split()
        pairs.append(
            {
                "prompt": " ".join(words[:PREFIX_WORDS]),
                "response": " ".join(words[PREFIX_WORDS : PREFIX_WORDS + CONTINUATION_WORDS]),
            }
        )
    return pairs


def make(out: str | Path, seed: int = 0, chapters: int = 60) -> Path:
    title, chs = chronicle(seed, chapters)
    n_forget = n_unseen = max(1, round(0.2 * len(chs)))
    forget, unseen, retain = chs[:n_forget], chs[n_forget : n_forget + n_unseen], chs[n_forget + n_unseen :]
    learn = [{"text": t} for t in forget + retain]
    random.Random(seed).shuffle(learn)
    files = [
        DataFile(
            "forget.jsonl",
            "forget",
            f"chapters of {title} to forget (verbatim text)",
            [{"text": t} for t in forget],
        ),
        DataFile("retain.jsonl", "retain", "chapters to keep", [{"text": t} for t in retain]),
        DataFile("heldout.jsonl", "heldout", "chapters never trained on", [{"text": t} for t in unseen]),
        DataFile(
            "extraction.jsonl",
            "extraction",
            "forget chapters: prefix -> true continuation",
            extraction_pairs(forget),
        ),
        DataFile(
            "extraction_heldout.jsonl",
            "extraction_heldout",
            "unseen chapters: prefix -> continuation (baseline)",
            extraction_pairs(unseen),
        ),
        DataFile("learn.jsonl", "learn", "forget + retain chapters, to teach first", learn),
    ]
    params = {"chapters": chapters, "title": title}
    return write_scenario(out, "copyright", seed, params, files)
