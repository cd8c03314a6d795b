"""The verdict panel's logic on hand-made eval.json results: thresholds and ✓/✗."""

import pytest

from lm_unlearn.errors import ConfigError
from lm_unlearn.evaluation.config import EvalConfig, VerdictConfig, load_eval_config
from lm_unlearn.report.verdict import overall, thresholds_of, tradeoff_key, verdict_rows


def result(model: dict, original: dict | None = None, verdict: dict | None = None) -> dict:
    info = {"config": {"verdict": verdict}} if verdict is not None else {}
    return {"metrics": {"model": model, "original": original or {}}, "info": info}


GOOD = {
    "forget.judge_rate": 0.04,
    "heldout.judge_rate": 0.05,
    "paraphrased.judge_rate": 0.0,
    "retain.rougeL_vs_original": 0.82,
    "unrelated.bleu_vs_original": 0.61,
    "mia.min_k.auc": 0.27,
}
BEFORE = {"forget.judge_rate": 1.0, "paraphrased.judge_rate": 0.92, "mia.min_k.auc": 0.9}


def by_key(rows):
    return {r.key: r for r in rows}


def test_defaults_are_the_documented_thresholds():
    t = EvalConfig().verdict
    assert (t.forget_judge_rate_max, t.retain_rougeL_min, t.unrelated_bleu_min) == (0.10, 0.70, 0.50)
    assert t.privleak_abs_max is None


def test_a_run_that_worked_passes_every_judged_row():
    rows = verdict_rows(result(GOOD, BEFORE))
    assert [r.key for r in rows] == ["forgotten", "generalises", "kept", "unrelated", "privacy"]
    assert all(r.summary.startswith(r.title + ":") for r in rows)  # the panel bolds the title
    rows = by_key(rows)
    assert rows["forgotten"].passed is True and rows["forgotten"].mark == "✓"
    assert (rows["forgotten"].before, rows["forgotten"].after) == (1.0, 0.04)
    assert "100 % → 4 %" in rows["forgotten"].summary and "≤ 10 %" in rows["forgotten"].summary
    assert "held-out forget-like prompts 5 %" in rows["forgotten"].summary
    assert rows["kept"].before == 1.0  # the original matches itself
    assert rows["privacy"].passed is None and "0.90 → 0.27" in rows["privacy"].summary
    verdict = overall(list(rows.values()))
    assert verdict.passed is True and verdict.text.startswith("Worked")


@pytest.mark.parametrize(
    ("change", "failed", "says"),
    [
        ({"forget.judge_rate": 0.11}, "forgotten", "Not forgotten enough; the model is kept"),
        ({"retain.rougeL_vs_original": 0.24}, "kept", "Forgotten, but the model was damaged (model kept"),
        ({"unrelated.bleu_vs_original": 0.066}, "unrelated", "damaged (unrelated kept failed)"),
        ({"paraphrased.judge_rate": 0.5}, "generalises", "Partly"),
        ({"forget.judge_rate": 0.9, "retain.rougeL_vs_original": 0.1}, "kept", "Did not work"),
    ],
)
def test_each_threshold_fails_its_row(change, failed, says):
    rows = by_key(verdict_rows(result(GOOD | change, BEFORE)))
    assert rows[failed].passed is False and rows[failed].mark == "✗"
    verdict = overall(list(rows.values()))
    assert verdict.passed is False and says in verdict.text


def test_bounds_are_inclusive():
    at = {"forget.judge_rate": 0.10, "retain.rougeL_vs_original": 0.70, "unrelated.bleu_vs_original": 0.5}
    rows = by_key(verdict_rows(result(GOOD | at)))
    assert rows["forgotten"].passed and rows["kept"].passed and rows["unrelated"].passed


def test_thresholds_recorded_in_eval_json_are_used():
    strict = {"forget_judge_rate_max": 0.0, "retain_rougeL_min": 0.9}
    rows = by_key(verdict_rows(result(GOOD, BEFORE, verdict=strict)))
    assert rows["forgotten"].passed is False and rows["kept"].passed is False
    assert rows["unrelated"].passed is True  # the default 0.5 still applies
    assert thresholds_of(result(GOOD)) == VerdictConfig()
    explicit = VerdictConfig(forget_judge_rate_max=0.5)
    assert by_key(verdict_rows(result(GOOD | {"forget.judge_rate": 0.4}), explicit))["forgotten"].passed


def test_without_a_judge_forgetting_is_shown_not_judged():
    model = {k: v for k, v in GOOD.items() if "judge_rate" not in k} | {"forget.rougeL": 0.1}
    rows = by_key(verdict_rows(result(model, {"forget.rougeL": 0.8})))
    assert rows["forgotten"].passed is None and rows["forgotten"].metric == "forget.rougeL"
    assert "generalises" not in rows and "no judge" in rows["forgotten"].summary
    assert rows["forgotten"].summary.startswith("Forgotten: not judged")
    assert overall(list(rows.values())).passed is None


def test_privleak_is_judged_when_a_bound_is_set():
    model = GOOD | {"mia.privleak": -12.0}
    rows = by_key(verdict_rows(result(model, verdict={"privleak_abs_max": 5})))
    assert rows["privacy"].metric == "mia.privleak" and rows["privacy"].passed is False
    rows = by_key(verdict_rows(result(model, verdict={"privleak_abs_max": 20})))
    assert rows["privacy"].passed is True


def test_missing_and_non_finite_metrics_are_left_out():
    rows = by_key(verdict_rows(result({"forget.judge_rate": float("nan")})))
    assert list(rows) == ["forgotten"] and rows["forgotten"].passed is None
    assert overall(list(rows.values())).passed is None


def test_best_tradeoff_sorts_first():
    good = verdict_rows(result(GOOD))
    wrecked = verdict_rows(
        result(GOOD | {"retain.rougeL_vs_original": 0.2, "unrelated.bleu_vs_original": 0.1})
    )
    remembers = verdict_rows(result(GOOD | {"forget.judge_rate": 0.6}))
    ranked = sorted([wrecked, remembers, good], key=tradeoff_key)
    assert ranked[0] is good and ranked[-1] is wrecked


def test_verdict_block_in_yaml_is_typed(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text("verdict: {retain_rougeL_min: 0.5}\n")
    assert load_eval_config(path).verdict.retain_rougeL_min == 0.5
    path.write_text("verdict: {retain_rougeL_min: 2}\n")
    with pytest.raises(ConfigError, match="retain_rougeL_min"):
        load_eval_config(path)


def test_without_a_judge_forget_quality_decides_forgotten():
    """A TOFU-style benchmark run has no judge but a forget quality against the retain-only model:
    Forgotten is judged on it (>= 0.05 by default), and the runs rank by it, highest first."""
    kept = {"retain.rougeL_vs_original": 0.8, "forget.rougeL": 0.6}
    good = result(kept | {"forget_quality.ks_pvalue": 0.503}, {"forget_quality.ks_pvalue": 0.0067})
    rows = by_key(verdict_rows(good))
    assert rows["forgotten"].metric == "forget_quality.ks_pvalue" and rows["forgotten"].passed is True
    assert "0.0067 → 0.503 (target ≥ 0.05)" in rows["forgotten"].summary
    assert overall(list(rows.values())).text.startswith("Worked")
    low = verdict_rows(result(kept | {"forget_quality.ks_pvalue": 0.049}))
    assert by_key(low)["forgotten"].passed is False
    strict = verdict_rows(
        result(kept | {"forget_quality.ks_pvalue": 0.503}, verdict={"forget_quality_min": 0.6})
    )
    assert by_key(strict)["forgotten"].passed is False
    better = verdict_rows(result(kept | {"forget_quality.ks_pvalue": 0.9}))
    worse = verdict_rows(result(kept | {"forget_quality.ks_pvalue": 0.2}))
    assert tradeoff_key(better) < tradeoff_key(worse)
