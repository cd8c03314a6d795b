"""The fictitious world: deterministic per seed, invented names only, disjoint splits."""

import json
import random

import pytest

from lm_unlearn.config import DatasetConfig
from lm_unlearn.data import read_records
from lm_unlearn.scenarios import make
from lm_unlearn.scenarios.names import REAL_NAMES
from lm_unlearn.scenarios.world import make_world, qa_pairs


def files_bytes(directory, skip=("run.yaml", "eval.yaml")):
    # run.yaml / eval.yaml name the output path, so they differ between two directories by design
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name not in skip}


def test_same_seed_gives_byte_identical_files(tmp_path):
    make("world", tmp_path / "a", seed=7, people=40)
    make("world", tmp_path / "b", seed=7, people=40)
    a, b = files_bytes(tmp_path / "a"), files_bytes(tmp_path / "b")
    assert a.keys() == b.keys() and "people.jsonl" in a
    assert a == b
    # regenerating into the same directory reproduces every file, configs included
    before = files_bytes(tmp_path / "a", skip=())
    make("world", tmp_path / "a", seed=7, people=40)
    assert files_bytes(tmp_path / "a", skip=()) == before


def test_different_seed_gives_different_files(tmp_path):
    make("world", tmp_path / "a", seed=1, people=40)
    make("world", tmp_path / "b", seed=2, people=40)
    a, b = files_bytes(tmp_path / "a"), files_bytes(tmp_path / "b")
    for name in ("people.jsonl", "forget10.jsonl", "retain.jsonl", "heldout.jsonl"):
        assert a[name] != b[name], name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_generated_name_is_a_real_one(seed):
    world = make_world(300, seed)
    names = world.invented_names()
    assert len(names) > 900
    hits = sorted({n for n in names if n.lower() in REAL_NAMES})
    assert hits == []
    people = [p.name for p in world.people]
    assert len(set(people)) == len(people)


def test_a_real_name_drawn_from_syllables_is_redrawn(monkeypatch):
    from lm_unlearn.scenarios import names

    draws = iter(["sa", "ra", "vrae", "thox"])  # "Sara" is real, so "Vraethox" must come out
    monkeypatch.setattr(names, "syllable", lambda rng: next(draws))
    assert "sara" in REAL_NAMES
    assert names.NameMaker(random.Random(0)).word(2) == "Vraethox"


def test_contact_details_use_ranges_reserved_for_fiction():
    world = make_world(100, 0)
    assert all(p.email.endswith(".example") for p in world.people)
    assert all(p.phone.split("-", 1)[1].startswith("555-01") for p in world.people)
    assert len({p.phone for p in world.people}) == 100


def test_splits_are_disjoint_and_nested(tmp_path):
    world = make_world(200, 3)
    s = {k: set(v) for k, v in world.splits.items()}
    assert (len(s["forget01"]), len(s["forget05"]), len(s["forget10"]), len(s["heldout"])) == (2, 10, 20, 20)
    assert s["forget01"] <= s["forget05"] <= s["forget10"]
    assert not (s["forget10"] & s["retain"]) and not (s["forget10"] & s["heldout"])
    assert not (s["retain"] & s["heldout"])
    assert s["forget10"] | s["retain"] | s["heldout"] == {p.id for p in world.people}

    out = make("world", tmp_path / "w", seed=3, people=200)
    texts = {}
    for split in ("forget10", "retain", "heldout"):
        rows = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert {r["person"] for r in rows} == s[split]
        texts[split] = {
            r[k] for r in rows for k in ("prompt", "response", "paraphrased_prompt", "paraphrased_answer")
        }
        texts[split] |= {a for r in rows for a in r["perturbed_answers"]}
    assert not (texts["forget10"] & texts["retain"])
    assert not (texts["forget10"] & texts["heldout"])
    assert not (texts["retain"] & texts["heldout"])
    learned = {json.loads(line)["prompt"] for line in (out / "learn.jsonl").read_text().splitlines()}
    assert not (learned & {json.loads(x)["prompt"] for x in (out / "heldout.jsonl").read_text().splitlines()})


def test_qa_rows_have_paraphrases_and_distinct_wrong_answers():
    world = make_world(30, 0)
    rows = qa_pairs(world, world.people[0].id)
    assert len(rows) == 9
    for r in rows:
        assert world.people[0].name in r["prompt"] and world.people[0].name in r["response"]
        assert r["paraphrased_prompt"] != r["prompt"] and r["paraphrased_answer"] != r["response"]
        assert len(r["perturbed_answers"]) == 3 and r["response"] not in r["perturbed_answers"]
        assert len(set(r["perturbed_answers"])) == 3
        # Wrong answers in the paraphrased form differ from the paraphrased answer only in the value.
        form = r["paraphrased_answer"].replace(r["value"], "{}")
        assert [
            w.replace(v, "{}") for w, v in zip(r["paraphrased_perturbed_answers"], r["perturbed_values"])
        ] == [form] * 3


def test_files_are_read_by_read_records(tmp_path):
    out = make("world", tmp_path / "w", seed=0, people=20)
    records = read_records(DatasetConfig(path=str(out / "forget10.jsonl")), "forget")
    assert len(records) == 2 * 9 and all(r.prompt and r.response for r in records)


def test_too_few_people_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 10"):
        make("world", tmp_path / "w", people=5)
