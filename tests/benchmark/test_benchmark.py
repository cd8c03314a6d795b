"""prepare (split, cache) and an end-to-end benchmark through the CLI on the tiny model."""

import csv
import json

import pytest
from support.tiny import tiny_benchmark_args
from typer.testing import CliRunner

from lm_unlearn.benchmark import prepare as prep
from lm_unlearn.benchmark.leaderboard import METRICS
from lm_unlearn.cli import app
from lm_unlearn.scenarios import make

runner = CliRunner()


def test_split_learn_drops_every_record_about_the_forget_people(tmp_path):
    data = make("knowledge", tmp_path / "k", seed=0, people=10)
    learn, retain_only = prep.split_learn(data)
    forget = [json.loads(line) for line in (data / "forget.jsonl").read_text().splitlines()]
    name = " ".join(forget[0]["response"].split()[:2])  # "<First> <Last> was born in ..."
    dropped = [r for r in learn if r not in retain_only]
    # One forget person (10 % of 10): 9 QA and the biography go; everything else stays.
    assert len(learn) == 90 and len(dropped) == 10
    assert sum("text" in r for r in dropped) == 1
    assert all(name in (r.get("text") or r["response"]) for r in dropped)
    assert not any(name in (r.get("text") or r["response"]) for r in retain_only)


def test_rebase_points_paths_into_the_prepared_data(tmp_path):
    (tmp_path / "forget.jsonl").write_text("{}\n")
    section = {"forget": {"path": "elsewhere/forget.jsonl", "limit": 3}, "retain": {"path": "hf:x"}}
    out = prep.rebase(section, tmp_path, tmp_path / "run.yaml")
    assert out["forget"] == {"path": str((tmp_path / "forget.jsonl").resolve()), "limit": 3}
    assert out["retain"] == {"path": "hf:x"}


def test_benchmark_cli_writes_the_leaderboard_with_reference_rows(cache, tmp_path, tiny_model_dir):
    out = tmp_path / "bench"
    args = tiny_benchmark_args(tiny_model_dir, out, "--eval-limit", "6")
    args += ["--metrics", "generation,likelihood,forget_quality"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert list(rows[0]) == ["scenario", "method", "kind", "seed"] + [m for m, _, _ in METRICS]
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {"retrain", "target", "ga", "graddiff"}
    assert by_method["retrain"]["kind"] == by_method["target"]["kind"] == "reference"
    # The retrain model is the forget-quality reference: its KS p-value against itself is 1.
    assert float(by_method["retrain"]["forget_quality.ks_pvalue"]) == pytest.approx(1.0)
    for method in ("target", "ga", "graddiff"):
        assert 0.0 <= float(by_method[method]["forget_quality.ks_pvalue"]) <= 1.0
        assert by_method[method]["forget.nll"] != ""
    assert (
        float(by_method["ga"]["cost.train_wall_s"]) > 0 and float(by_method["ga"]["cost.train_peak_gib"]) > 0
    )
    # The unlearning runs start from the taught target, and are evaluated against it.
    run = out / "runs" / "knowledge-ga-seed0"
    manifest = json.loads((run / "manifest.json").read_text())
    target = manifest["config"]["model"]["name"]
    assert target.endswith("target/model") and str(cache) in target
    # --stop target (the default): validated, stopped at the held-out people's forget NLL, and
    # its validation split left out of the evaluation.
    assert manifest["selection"]["target"] == {"forget_nll": "heldout"}
    assert manifest["selection"]["step"] == int(float(by_method["ga"]["cost.kept_step"])) <= 2
    assert (run / "validation.json").is_file()
    info = json.loads((run / "eval.json").read_text())["info"]["models"]
    assert info["original"] == target and info["retain_model"].endswith("retrain/model")
    md = (out / "leaderboard.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| knowledge")]
    assert [line.split("|")[2].strip() for line in lines[:2]] == [
        "*retrain* (reference)",
        "*target* (reference)",
    ]
    assert len(lines) == 4
    assert (out / "tradeoff-knowledge.png").read_bytes()[:4] == b"\x89PNG"
    # Without a judge, forget quality decides "Forgotten"; the page shows the answers side by side.
    assert "Cannot say whether it was forgotten" not in md and "report-knowledge.html" in md
    assert "changed with `--set`" in md and "`data.max_length=64`" in md
    page = (out / "report-knowledge.html").read_text()
    assert page.index('id="verdict"') < page.index('id="answers"') < page.index('id="tradeoff"')
    for label in ("ga", "graddiff", "retrain (reference)"):
        assert f"<b>{label}</b>" in page

    # Again: every run is reused, nothing is trained or evaluated a second time, and the notes
    # still count the reused rows' time.
    stamp = (run / "eval.json").stat().st_mtime_ns
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (run / "eval.json").stat().st_mtime_ns == stamp
    own = sum(float(r[k] or 0) for r in rows for k in ("cost.train_wall_s", "cost.eval_wall_s"))
    assert (
        own > 0
        and f"reused runs included (audits and preparing not), {own:.0f} s."
        in (out / "leaderboard.md").read_text()
    )


def test_run_train_stops_at_the_heldout_target_or_runs_fixed_steps():
    from lm_unlearn.benchmark.grid import GridSpec, run_train

    spec = GridSpec(scenarios=["knowledge"], methods=["npo"], steps=30, eval_every=3)
    assert run_train(spec, 1, has_heldout=True, method="npo") == {
        "max_steps": 30,
        "seed": 1,
        "eval_every": 3,
        "target": {"forget_nll": "heldout"},
    }
    fixed = {"max_steps": 30, "seed": 1, "eval_every": 0}
    assert run_train(spec, 1, has_heldout=False, method="npo") == fixed  # nothing to aim at
    assert run_train(GridSpec(["knowledge"], ["npo"], steps=30, stop="steps"), 1, True, "npo") == fixed
    with pytest.raises(ValueError, match="--stop 'soon'"):
        run_train(GridSpec(["knowledge"], ["npo"], stop="soon"), 1, True, "npo")


def test_without_steps_each_method_gets_its_recipes_budget():
    from lm_unlearn.benchmark.grid import GridSpec, grid_notes, method_steps, run_train

    spec = GridSpec(scenarios=["knowledge"], methods=["yao", "npo"])
    assert method_steps(spec, "yao") == 100 and method_steps(spec, "npo") == 60
    assert run_train(spec, 0, True, "yao")["max_steps"] == 100
    assert "at most yao 100, npo 60 steps" in grid_notes(spec, ["knowledge"], 1.0, [])[0]
    given = GridSpec(scenarios=["knowledge"], methods=["yao", "npo"], steps=30)
    assert (
        method_steps(given, "yao") == 30
        and "at most 30 steps" in grid_notes(given, ["knowledge"], 1.0, [])[0]
    )


def test_method_scoped_overrides_apply_to_that_method_only_and_win():
    from lm_unlearn.benchmark.grid import method_overrides

    sets = ["yao:train.lr=1e-3", "train.lr=5e-4", "data.max_length=64", "npo:objective.npo.beta=0.2"]
    assert method_overrides(sets, "yao") == ["train.lr=5e-4", "data.max_length=64", "train.lr=1e-3"]
    assert method_overrides(sets, "graddiff") == ["train.lr=5e-4", "data.max_length=64"]
    assert method_overrides(["name=a:b"], "yao") == ["name=a:b"]  # a ':' in the value is not a scope


def test_prepare_cli_reuses_the_cache_and_teaches_again_when_settings_change(
    cache, tiny_model_dir, monkeypatch
):
    args = ["prepare", "knowledge", "--model", str(tiny_model_dir), "--people", "10", "--epochs", "0.1"]
    taught = []
    real_teach = prep.teach_model
    monkeypatch.setattr(prep, "teach_model", lambda *a, **k: taught.append(a[-1]) or real_teach(*a, **k))
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    root = next(line.split(" ", 1)[1] for line in first.output.splitlines() if line.startswith("prepared "))
    info = json.loads((__import__("pathlib").Path(root) / "prepared.json").read_text())
    assert info["target"]["records"] == 90 and info["retrain"]["records"] == 80
    assert info["target"]["steps"] == 2  # ceil(0.1 epochs * 90 records / batch 8)
    before = len(taught)  # 0 if the benchmark test ran first, 2 otherwise
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and f"prepared {root}" in again.output
    assert len(taught) == before
    other = runner.invoke(app, args + ["--seed", "1"])
    assert other.exit_code == 0, other.output
    assert taught[before:] == ["target", "retrain"] and f"prepared {root}" not in other.output


def test_privleak_is_nan_not_a_crash_when_the_retrain_auc_is_zero():
    # A seed-1 knowledge benchmark with 10 people gave the retrain model a Min-K AUC of 0 and
    # stopped with ZeroDivisionError in evaluation/mia.py before this was fixed.
    import math

    from lm_unlearn.evaluation import mia

    # MUSE's form divides by 1 - AUC_retrain (its forget-as-non-member AUC).
    assert math.isnan(mia.muse_privleak(0.4, 1.0))
    assert mia.muse_privleak(0.4, 0.0) == pytest.approx(-40.0)


def test_prepare_names_what_is_wrong_with_the_scenario(tmp_path, tiny_model_dir):
    from lm_unlearn.errors import DataError

    with pytest.raises(DataError, match="unknown scenario 'nonesuch'.*directory with scenario.json"):
        prep.prepare("nonesuch", model=str(tiny_model_dir), cache_root=tmp_path)
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match="mine: no scenario.json"):
        prep.prepare(str(tmp_path / "mine"), model=str(tiny_model_dir), cache_root=tmp_path)


def test_changed_evaluation_files_reuse_the_taught_models(tmp_path, tiny_model_dir, monkeypatch):
    from lm_unlearn.scenarios import make

    data = make("knowledge", tmp_path / "kn", seed=0, people=10)
    settings = prep.TeachSettings(epochs=0.05, precision="fp32")
    first = prep.prepare(str(data), model=str(tiny_model_dir), teach=settings, cache_root=tmp_path / "c")
    taught = []
    monkeypatch.setattr(prep, "teach_model", lambda *a, **k: taught.append(a[-1]))
    (data / "perturbed.jsonl").write_text((data / "perturbed.jsonl").read_text().replace("born", "BORN"))
    again = prep.prepare(str(data), model=str(tiny_model_dir), teach=settings, cache_root=tmp_path / "c")
    assert again.root == first.root and taught == []
    assert "BORN" in (again.data_dir / "perturbed.jsonl").read_text()
    (data / "learn.jsonl").write_text((data / "learn.jsonl").read_text().replace("born", "BORN"))
    third = prep.prepare(str(data), model=str(tiny_model_dir), teach=settings, cache_root=tmp_path / "c")
    assert third.root != first.root and taught == ["target", "retrain"]  # a taught file changed


def test_configs_that_differ_only_in_directories_are_the_same(tmp_path):
    a, b, c = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    a.write_text("forget: {path: /tmp/x1/forget.jsonl}\nmax_new_tokens: 8\n")
    b.write_text("forget: {path: /scratch/y/forget.jsonl}\nmax_new_tokens: 8\n")
    c.write_text(
        "forget: {path: /tmp/x1/forget.jsonl}\nperturbed: {path: /tmp/x1/p.jsonl}\nmax_new_tokens: 8\n"
    )
    assert prep._same_config(a, b) and not prep._same_config(a, c)
