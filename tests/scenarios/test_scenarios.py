"""Each scenario: readable by `unlearn run`, described by scenario.json, deterministic, and
holding what its docstring promises."""

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from lm_unlearn.cli import app
from lm_unlearn.config import DatasetConfig, load_config
from lm_unlearn.data import read_records
from lm_unlearn.engine import check_data
from lm_unlearn.errors import DataError
from lm_unlearn.evaluation.config import load_eval_config
from lm_unlearn.scenarios import SCENARIOS, make

SMALL = {
    "world": {"people": 30},
    "privacy": {"people": 30},
    "knowledge": {"people": 30},
    "hallucination": {"people": 30},
    "copyright": {"chapters": 10},
    "harmful": {},
    "concept": {},
}


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_role(out, role):
    meta = json.loads((out / "scenario.json").read_text())
    names = [name for name, info in meta["files"].items() if info["role"] == role]
    assert len(names) == 1, (role, names)
    return rows(out / names[0])


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_files_are_usable_and_described(tmp_path, name):
    out = make(name, tmp_path / name, seed=5, **SMALL[name])
    meta = json.loads((out / "scenario.json").read_text())
    assert meta["scenario"] == name and meta["seed"] == 5
    on_disk = {p.name for p in out.glob("*.jsonl")}
    assert on_disk == set(meta["files"])
    for file, info in meta["files"].items():
        assert len(rows(out / file)) == info["records"] > 0
        if info["role"] not in ("source", "world"):  # the concept's format and people.jsonl are not records
            # unrelated questions come without answers: they are scored against the original's
            read_records(DatasetConfig(path=str(out / file)), info["role"], info["role"] != "unrelated")
    # the ready-made configs validate and name readable files
    check_data(load_config(out / "run.yaml"))
    eval_cfg = load_eval_config(out / "eval.yaml")
    assert eval_cfg.forget is not None and eval_cfg.retain is not None


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_is_deterministic_per_seed(tmp_path, name):
    def contents(d):
        return {p.name: p.read_bytes() for p in sorted(d.glob("*.json*"))}

    a = contents(make(name, tmp_path / "a", seed=11, **SMALL[name]))
    b = contents(make(name, tmp_path / "b", seed=11, **SMALL[name]))
    c = contents(make(name, tmp_path / "c", seed=12, **SMALL[name]))
    assert a == b
    assert a.keys() == c.keys()
    forget = [n for n, info in json.loads(a["scenario.json"])["files"].items() if info["role"] == "forget"]
    assert forget and all(a[n] != c[n] for n in forget)


def test_knowledge_splits(tmp_path):
    out = make("knowledge", tmp_path / "k", seed=0, people=100, forget_percent=5)
    forget, retain, held = (rows(out / f"{r}.jsonl") for r in ("forget", "retain", "heldout"))
    assert len(forget) == 5 * 9 and len(held) == 10 * 9 and len(retain) == 85 * 9
    prompts = [{r["prompt"] for r in s} for s in (forget, retain, held)]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])
    learned = {r["prompt"] for r in rows(out / "learn.jsonl") if "prompt" in r}
    assert learned == prompts[0] | prompts[1]
    pert = rows(out / "perturbed.jsonl")
    assert [r["prompt"] for r in pert] == [r["prompt"] for r in forget]
    assert all(len(r["perturbed_answers"]) == 3 and r["response"] not in r["perturbed_answers"] for r in pert)
    para = rows(out / "paraphrased.jsonl")
    assert all(p["prompt"] != f["prompt"] and p["response"] == f["response"] for p, f in zip(para, forget))


def test_privacy_records_and_judge(tmp_path):
    out = make("privacy", tmp_path / "p", seed=0, people=50)
    forget, retain = rows(out / "forget.jsonl"), rows(out / "retain.jsonl")
    cards = rows(out / "forget_text.jsonl")
    assert len(forget) == 3 * len(cards) == 15
    emails = re.findall(r"\S+@\S+\.example", " ".join(c["text"] for c in cards))
    assert len(emails) == 5
    other = json.dumps(retain) + (out / "heldout.jsonl").read_text() + (out / "retain_text.jsonl").read_text()
    assert not any(e in other for e in emails)
    judge = yaml.safe_load((out / "eval.yaml").read_text())["judge"]
    flags = [any(re.search(p, r["response"]) for p in judge["patterns"]) for r in forget + retain]
    assert flags == [True] * len(forget) + [False] * len(retain)


def test_copyright_extraction_pairs_are_verbatim(tmp_path):
    out = make("copyright", tmp_path / "c", seed=0, chapters=20)
    forget = [r["text"] for r in rows(out / "forget.jsonl")]
    retain = [r["text"] for r in rows(out / "retain.jsonl")]
    unseen = [r["text"] for r in rows(out / "heldout.jsonl")]
    assert (len(forget), len(retain), len(unseen)) == (4, 12, 4)
    assert len(set(forget + retain + unseen)) == 20
    for pair, text in zip(rows(out / "extraction.jsonl"), forget):
        assert text.startswith(pair["prompt"] + " " + pair["response"])
        assert len(pair["prompt"].split()) == len(pair["response"].split()) == 32
    assert sorted(r["text"] for r in rows(out / "learn.jsonl")) == sorted(forget + retain)


def test_hallucination_teaches_falsehoods_only_for_forget_people(tmp_path):
    out = make("hallucination", tmp_path / "h", seed=0, people=40)
    forget, truth = rows(out / "forget.jsonl"), rows(out / "truth.jsonl")
    assert [r["prompt"] for r in forget] == [r["prompt"] for r in truth]
    assert all(f["response"] != t["response"] for f, t in zip(forget, truth))
    world = make("world", tmp_path / "w", seed=0, people=40)
    true_answers = {
        r["prompt"]: r["response"] for s in ("forget10", "retain") for r in rows(world / f"{s}.jsonl")
    }
    perturbed = {r["prompt"]: r["perturbed_answers"] for r in rows(world / "forget10.jsonl")}
    assert all(r["response"] in perturbed[r["prompt"]] for r in forget)
    assert all(true_answers[r["prompt"]] == r["response"] for r in rows(out / "retain.jsonl"))
    judge = yaml.safe_load((out / "eval.yaml").read_text())["judge"]
    facts = [r["fact"] for r in rows(world / "forget10.jsonl")]
    flagged = [any(re.search(p, r["response"]) for p in judge["patterns"]) for r in forget]
    assert flagged == [fact != "birth_year" for fact in facts]


def test_harmful_proxy_sets(tmp_path):
    out = make("harmful", tmp_path / "x", seed=0, forget_count=30, heldout_count=10)
    forget, held = rows(out / "forget.jsonl"), rows(out / "heldout.jsonl")
    assert (len(forget), len(held)) == (30, 10)
    assert not ({r["prompt"] for r in forget} & {r["prompt"] for r in held})
    judge = rows(out / "judge.jsonl")
    assert {j["label"] for j in judge} == {0, 1}
    rude = {j["text"] for j in judge if j["label"] == 1}
    polite = rows(out / "polite.jsonl")
    assert [p["prompt"] for p in polite] == [f["prompt"] for f in forget]
    assert not ({p["response"] for p in polite} & rude)
    cfg = load_eval_config(out / "eval.yaml").judge_config()
    assert cfg.kind == "classifier"
    assert len(read_records(cfg.positive, "positive")) == sum(j["label"] == 1 for j in judge)
    assert len(read_records(cfg.negative, "negative")) == sum(j["label"] == 0 for j in judge)


def test_concept_round_trips_through_the_loader(tmp_path):
    out = make("concept", tmp_path / "c", seed=0)
    record = rows(out / "concept.jsonl")[0]
    # the published layout: question strings, the original's answers as "Question: ...\n Answer: ..."
    assert set(record) == {
        "id",
        "Concept",
        "wikipedia_content",
        "QA",
        "QA_with_answers",
        "text_completion",
        "unrelated_QA",
    }
    assert all(isinstance(q, str) for q in record["QA"] + record["unrelated_QA"])
    assert all(
        a.startswith(f"Question: {q}\n Answer: ") for q, a in zip(record["QA"], record["QA_with_answers"])
    )
    forget = rows(out / "forget.jsonl")
    n_qa, n_tc = len(record["QA"]), len(record["text_completion"])
    assert sum("prompt" in r for r in forget) == n_qa + n_tc and any("text" in r for r in forget)
    assert [r["prompt"] for r in rows(out / "unrelated.jsonl")] == record["unrelated_QA"]
    retain_prompts = {r["prompt"] for r in rows(out / "retain.jsonl")}
    assert retain_prompts and not retain_prompts & set(record["unrelated_QA"])  # unrelated: never taught
    eval_cfg = load_eval_config(out / "eval.yaml")
    assert eval_cfg.unrelated is not None and eval_cfg.forget.path.endswith("forget_qa.jsonl")
    # run.yaml unlearns the article alone: the questions the evaluation asks are never trained on
    run_cfg = load_config(out / "run.yaml")
    assert run_cfg.data.forget.path.endswith("forget_text.jsonl")
    text = rows(out / "forget_text.jsonl")
    assert all(set(r) == {"text"} for r in text) and len(text) == 3
    assert "\n\n".join(r["text"] for r in text) == record["wikipedia_content"]
    result = CliRunner().invoke(
        app, ["data", "convert", "concept", str(out / "concept.jsonl"), "--out", str(tmp_path / "again")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again" / "forget.jsonl").read_bytes() == (out / "forget.jsonl").read_bytes()


def test_cli_make_and_errors(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "make", "privacy", "--out", str(tmp_path / "p"), "--people", "20"])
    assert ok.exit_code == 0, ok.output
    assert "forget.jsonl" in ok.output and "run.yaml" in ok.output
    bad = runner.invoke(app, ["data", "make", "nonsense", "--out", str(tmp_path / "n")])
    assert bad.exit_code == 2 and "unknown scenario 'nonsense'" in bad.output
    wrong_opt = runner.invoke(
        app, ["data", "make", "copyright", "--out", str(tmp_path / "c"), "--people", "9"]
    )
    assert wrong_opt.exit_code == 2 and "does not take --people" in wrong_opt.output
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("do not delete")
    refused = runner.invoke(app, ["data", "make", "world", "--out", str(keep)])
    assert refused.exit_code == 2 and "not a scenario directory" in refused.output
    assert (keep / "notes.txt").read_text() == "do not delete"


def test_forget_percent_must_be_a_tofu_level(tmp_path):
    with pytest.raises(DataError, match="1, 5 or 10"):
        make("knowledge", tmp_path / "k", forget_percent=3)
