"""What `data convert` writes into --out: only plain names inside it, never over its input,
the input's own hash, no stale files from earlier conversions, one file per role."""

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lm_unlearn.cli import app
from lm_unlearn.data.formats import convert, convert_files
from lm_unlearn.errors import DataError

PKU_UNSAFE = {
    "prompt": "How do I hot-wire a car?",
    "response_0": "Strip the ignition wires and touch them together.",
    "response_1": "I can't help with that.",
    "is_response_0_safe": False,
    "is_response_1_safe": True,
}
PKU_SAFE = {
    "prompt": "How long should I boil an egg?",
    "response_0": "About nine minutes for a hard yolk.",
    "response_1": "Six minutes gives a soft yolk.",
    "is_response_0_safe": True,
    "is_response_1_safe": True,
}
TRUTHFULQA = {
    "question": "What happens if you swallow gum?",
    "best_answer": "It passes through your digestive system",
    "correct_answers": ["It passes through your digestive system", "Nothing much"],
    "incorrect_answers": ["It stays in your stomach for seven years"],
}


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def meta(out):
    return json.loads((out / "scenario.json").read_text())


@pytest.mark.parametrize("role", ["../victim_input", "/tmp/abs", "sub/name", "..", ".hidden", "a\\b"])
def test_role_must_be_a_plain_name(tmp_path, role):
    victim = tmp_path / "victim_input.jsonl"
    victim.write_text("precious\n")
    source = write_jsonl(tmp_path / "in" / "forget10.jsonl", [{"question": "Q?", "answer": "A."}])
    out = tmp_path / "out"
    with pytest.raises(DataError, match="--role .* must be a plain file name"):
        convert("tofu", source, out, role=role)
    assert victim.read_text() == "precious\n" and not out.exists()


def test_refuses_to_overwrite_its_own_input(tmp_path):
    out = tmp_path / "tofu"
    convert("tofu", write_jsonl(tmp_path / "retain90.jsonl", [{"question": "R?", "answer": "B."}]), out)
    source = write_jsonl(out / "forget10.jsonl", [{"question": "Q?", "answer": "A."}])
    before = source.read_bytes()
    with pytest.raises(DataError, match="is the input file"):
        convert("tofu", source, out)
    assert source.read_bytes() == before


def test_refuses_a_hard_link_to_its_input(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"question": "Q?", "answer": "A."}])
    out = tmp_path / "out"
    out.mkdir()
    (out / "scenario.json").write_text('{"scenario": "converted:tofu", "files": {}}')
    (out / "forget10.jsonl").hardlink_to(source)
    with pytest.raises(DataError, match="is the input file"):
        convert("tofu", source, out, role="forget10")


def test_source_hash_and_path_are_the_inputs(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "data" / "train.jsonl", [PKU_UNSAFE])
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.chdir(tmp_path / "data")
    convert("pku-saferlhf", Path("train.jsonl"), tmp_path / "out")
    info = meta(tmp_path / "out")["files"]["forget.jsonl"]
    assert info["source_sha256"] == expected
    assert info["source"] == str(source.resolve())


def test_reconverting_leaves_no_stale_file(tmp_path):
    out = tmp_path / "pku"
    convert("pku-saferlhf", write_jsonl(tmp_path / "mixed.jsonl", [PKU_UNSAFE, PKU_SAFE]), out)
    assert (out / "forget.jsonl").is_file()
    written = convert_files("pku-saferlhf", write_jsonl(tmp_path / "safe.jsonl", [PKU_SAFE]), out)
    assert written == ["retain.jsonl", "judge.jsonl"]
    assert not (out / "forget.jsonl").exists()
    files = meta(out)["files"]
    assert set(files) == {"retain.jsonl", "judge.jsonl"}
    assert all(info["source"].endswith("safe.jsonl") for info in files.values())


def test_another_format_needs_force(tmp_path):
    out = tmp_path / "data"
    convert("pku-saferlhf", write_jsonl(tmp_path / "pku.jsonl", [PKU_UNSAFE]), out)
    tqa = write_jsonl(tmp_path / "tqa.jsonl", [TRUTHFULQA])
    with pytest.raises(DataError, match=r"judge\.jsonl \(pku-saferlhf\).*--force"):
        convert("truthfulqa", tqa, out)
    assert meta(out)["scenario"] == "converted:pku-saferlhf"
    convert("truthfulqa", tqa, out, force=True)
    assert not (out / "judge.jsonl").exists()
    assert meta(out)["scenario"] == "converted:truthfulqa"
    assert set(meta(out)["files"]) == {"forget.jsonl", "retain.jsonl", "perturbed.jsonl"}


def test_generated_scenario_directory_needs_force(tmp_path):
    from lm_unlearn.scenarios import make

    out = make("concept", tmp_path / "concept", seed=0)
    with pytest.raises(DataError, match="another conversion or scenario"):
        convert("truthfulqa", write_jsonl(tmp_path / "tqa.jsonl", [TRUTHFULQA]), out)
    convert("truthfulqa", tmp_path / "tqa.jsonl", out, force=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "forget.jsonl",
        "perturbed.jsonl",
        "retain.jsonl",
        "scenario.json",
    ]
    assert "seed" not in meta(out)


def test_duplicate_role_names_both_files(tmp_path):
    out = tmp_path / "tofu"
    convert("tofu", write_jsonl(tmp_path / "forget10.jsonl", [{"question": "Q?", "answer": "A."}]), out)
    with pytest.raises(DataError, match=r"forget10\.jsonl and forget05\.jsonl .* role 'forget'"):
        convert("tofu", write_jsonl(tmp_path / "forget05.jsonl", [{"question": "Q?", "answer": "A."}]), out)
    assert not (out / "forget05.jsonl").exists()


def test_cli_lists_only_what_this_run_wrote(tmp_path):
    out = tmp_path / "tofu"
    forget = write_jsonl(tmp_path / "forget10.jsonl", [{"question": "Q?", "answer": "A."}])
    retain = write_jsonl(tmp_path / "retain90.jsonl", [{"question": "R?", "answer": "B."}])
    runner = CliRunner()
    assert runner.invoke(app, ["data", "convert", "tofu", str(forget), "--out", str(out)]).exit_code == 0
    second = runner.invoke(app, ["data", "convert", "tofu", str(retain), "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert "retain90.jsonl" in second.output and "forget10.jsonl" not in second.output
    escape = runner.invoke(
        app, ["data", "convert", "tofu", str(retain), "--out", str(out), "--role", "../victim"]
    )
    assert escape.exit_code == 2 and "plain file name" in escape.output


def test_prepare_picks_the_forget_perturbed_set_and_refuses_duplicate_roles(tmp_path):
    from lm_unlearn.benchmark.prepare import Prepared

    qa = {"question": "Who wrote 'The Salt Ledger'?", "answer": "Mira Okafor."}
    perturbed = qa | {"paraphrased_answer": "Okafor did.", "perturbed_answer": ["Ian Holt.", "Sara Lind."]}
    prepared = Prepared(tmp_path / "bench")
    for name, row in [
        ("forget10", qa),
        ("retain90", qa),
        ("holdout10", qa),
        ("retain_perturbed", perturbed),
        ("forget10_perturbed", perturbed),
    ]:
        convert("tofu", write_jsonl(tmp_path / f"{name}.json", [row, row]), prepared.data_dir)
    data = prepared.eval_data()
    assert Path(data["perturbed"]["path"]).name == "forget10_perturbed.jsonl"
    assert {role: Path(d["path"]).name for role, d in data.items() if role != "perturbed"} == {
        "forget": "forget10.jsonl",
        "retain": "retain90.jsonl",
        "heldout": "holdout10.jsonl",
    }
    scenario = prepared.data_dir / "scenario.json"
    old = json.loads(scenario.read_text())  # as an earlier version wrote it: both 'perturbed'
    old["files"]["retain_perturbed.jsonl"]["role"] = "perturbed"
    old["files"]["forget10_perturbed.jsonl"]["role"] = "perturbed"
    scenario.write_text(json.dumps(old))
    with pytest.raises(DataError, match=r"retain_perturbed\.jsonl and forget10_perturbed\.jsonl"):
        prepared.eval_data()
