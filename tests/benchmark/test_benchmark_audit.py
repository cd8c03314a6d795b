"""`unlearn benchmark --audit`: the gap_closed figure by hand, the columns, and a tiny benchmark."""

import csv
import json

import pytest
from support.tiny import tiny_benchmark_args
from typer.testing import CliRunner

from lm_unlearn.benchmark.audit import BUDGETED, AuditBudget, check_attacks, gap_figure
from lm_unlearn.benchmark.leaderboard import row_from_eval, write_leaderboard
from lm_unlearn.cli import app

runner = CliRunner()


def attack(before, after, target):
    return {"before": {"nll": before}, "after": {"nll": after}, "original": {"nll": target}}


def test_gap_closed_is_the_share_of_the_unlearning_gap_the_attack_closes():
    # Unlearning raised the forget NLL from 1.0 (target) to 3.0; the attack brings it to 2.5.
    assert gap_figure(attack(3.0, 2.5, 1.0)) == (pytest.approx(0.25), None)
    assert gap_figure(attack(3.0, 1.0, 1.0))[0] == pytest.approx(1.0)  # back to the target
    assert gap_figure(attack(3.0, 0.5, 1.0))[0] == pytest.approx(1.25)  # past it: not clipped
    assert gap_figure(attack(3.0, 3.5, 1.0))[0] == pytest.approx(-0.25)  # further away
    value, note = gap_figure(attack(1.02, 0.9, 1.0))  # unlearning hardly moved the NLL
    assert value is None and "no gap to close" in note and "1.020" in note
    value, note = gap_figure(attack(0.8, 0.9, 1.0))  # moved the wrong way: no gap either
    assert value is None and note
    assert gap_figure({"skipped": "no questions"}) == (None, "skipped: no questions")


def test_budget_options_are_what_the_attacks_take():
    b = AuditBudget(relearn_steps=3, relearn_lr=1e-3)
    assert BUDGETED["relearn"](b) == {
        "steps": 3,
        "lr": 1e-3,
        "batch_size": 4,
        "fraction": 0.5,
        "max_new_tokens": 32,
    }
    assert BUDGETED["quantize"](b)["bits"] == [4]
    assert b.describe(["relearn"]).startswith("relearn: 3 AdamW steps, lr 0.001, batch 4")
    assert b.describe(["quantize"]).startswith("quantize: 4-bit, simulated on CPU")
    with pytest.raises(ValueError, match="--audit foo: unknown attack; known: relearn, quantize"):
        check_attacks(["relearn", "foo"])


def test_audit_columns_appear_only_when_audited_with_notes_for_missing_values(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({"metrics": {"model": {"forget.nll": 2.0}}}))
    audit = {
        "relearn": {"gap_closed": 0.4, "note": None},
        "quantize": {"gap_closed": None, "note": "no gap to close: ..."},
    }
    rows = [
        row_from_eval("k", "ga", "method", 0, tmp_path / "eval.json", audit),
        row_from_eval("k", "target", "reference", 0, tmp_path / "eval.json"),
    ]
    paths = write_leaderboard(rows, tmp_path / "out", "t")
    written = list(csv.DictReader(paths["csv"].open()))
    assert written[0]["audit.relearn.gap_closed"] == "0.4" and written[0]["audit.quantize.gap_closed"] == ""
    md = paths["markdown"].read_text()
    assert "relearn gap closed" in md and "- k / ga, seed 0, quantize: no gap to close: ..." in md
    plain = write_leaderboard(rows[1:], tmp_path / "plain", "t")
    assert "audit." not in plain["csv"].read_text() and "gap closed" not in plain["markdown"].read_text()


def test_unknown_audit_attack_is_refused_before_any_work(tmp_path):
    result = runner.invoke(app, ["benchmark", "--audit", "relearn,foo", "--out", str(tmp_path / "b")])
    assert result.exit_code != 0
    assert "--audit foo: unknown attack; known: relearn, quantize" in result.output
    assert not (tmp_path / "b").exists()


def test_benchmark_audit_fills_the_columns_and_reuses_finished_attacks(cache, tmp_path, tiny_model_dir):
    out = tmp_path / "bench"
    args = tiny_benchmark_args(tiny_model_dir, out, "--stop", "steps", "--eval-limit", "4")
    args += ["--metrics", "likelihood"]
    # ga moves the forget NLL; graddiff at a vanishing learning rate leaves it where it was.
    args += ["--set", "ga:train.lr=1e-2", "--set", "graddiff:train.lr=1e-12"]
    args += ["--audit", "relearn,quantize", "--relearn-steps", "2", "--relearn-lr", "3e-4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in csv.DictReader((out / "leaderboard.csv").open())}
    ga_dir = out / "runs" / "knowledge-ga-seed0"
    saved = json.loads((ga_dir / "benchmark_audit.json").read_text())
    relearn = saved["relearn"]["result"]
    assert relearn["settings"] == {"steps": 2, "lr": 3e-4, "batch_size": 4, "fraction": 0.5}
    assert saved["quantize"]["result"]["best_variant"] == "4bit"
    # The column is the formula on the attack's own forget NLLs (the held-back half for relearn).
    b, a, t = (relearn[k]["nll"] for k in ("before", "after", "original"))
    assert b - t >= 0.05
    gap = float(rows["ga"]["audit.relearn.gap_closed"])
    assert gap == pytest.approx((b - a) / (b - t)) and 0.0 < gap <= 1.0
    assert rows["ga"]["audit.quantize.gap_closed"] != ""
    # graddiff did not move the forget NLL: no value, and the leaderboard says why.
    assert rows["graddiff"]["audit.relearn.gap_closed"] == rows["graddiff"]["audit.quantize.gap_closed"] == ""
    md = (out / "leaderboard.md").read_text()
    assert "- knowledge / graddiff, seed 0, relearn: no gap to close" in md
    assert "relearn: 2 AdamW steps, lr 0.0003" in md and "quantize: 4-bit" in md
    budget = json.loads((out / "benchmark.json").read_text())["audit_budget"]
    assert budget["relearn_steps"] == 2 and budget["quantize_bits"] == 4

    # Again: finished attacks are reused; a changed relearn budget reruns relearn only.
    stamp = (ga_dir / "benchmark_audit.json").stat().st_mtime_ns
    assert runner.invoke(app, args).exit_code == 0
    assert (ga_dir / "benchmark_audit.json").stat().st_mtime_ns == stamp
    steps = args.index("--relearn-steps") + 1
    again = runner.invoke(app, args[:steps] + ["3"] + args[steps + 1 :])
    assert again.exit_code == 0, again.output
    now = json.loads((ga_dir / "benchmark_audit.json").read_text())
    assert now["relearn"]["budget"]["steps"] == 3 and now["quantize"] == saved["quantize"]


def test_a_run_that_cannot_be_attacked_gets_a_note_not_a_crash(tmp_path):
    from lm_unlearn.benchmark.audit import audit_run

    run = tmp_path / "knowledge-icu-seed0"
    run.mkdir()  # no manifest.json, no model/: nothing to load
    got = audit_run(run, ["relearn"], AuditBudget())
    assert got["relearn"]["gap_closed"] is None
    assert got["relearn"]["note"].startswith("not audited:") and "manifest.json" in got["relearn"]["note"]
    assert json.loads((run / "benchmark_audit.json").read_text())["relearn"] == got["relearn"]
