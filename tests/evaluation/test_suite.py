import pytest

from lm_unlearn.evaluation import evaluate
from lm_unlearn.evaluation.suite import ATTACKS


def test_privleak_and_forget_quality_when_model_is_the_retain_model(tiny_model_dir, data, make_cfg):
    cfg = make_cfg(metrics=["mia", "forget_quality"])
    result = evaluate(str(tiny_model_dir), data, cfg, retain_model=str(tiny_model_dir))
    m = result["metrics"]["model"]
    for attack in ("loss", "zlib", "min_k", "min_k_pp"):
        assert m[f"mia.{attack}.privleak"] == pytest.approx(0.0, abs=1e-9)
    assert m["forget_quality.ks_pvalue"] == pytest.approx(1.0)
    assert m["forget_quality.ks_stat"] == pytest.approx(0.0)
    assert not any(k.startswith(("forget.bleu", "retain.")) for k in m)  # groups not asked for


def test_full_suite_has_every_group(full_result):
    m = full_result["metrics"]["model"]
    for name in (
        "forget.judge_rate",
        "forget.rougeL",
        "forget.nll",
        "forget.prob",
        "heldout.rougeL",
        "paraphrased.rougeL",
        "extraction.leak_rate",
        "retain.ppl",
        "retain.kl_to_original",
        "retain.cosine_vs_original",
        "retain.gen_ppl",
        "retain.distinct_2",
        "unrelated.rougeL_recall",
        "forget_quality.ks_pvalue",
    ):
        assert name in m, name
    for attack in ATTACKS:
        assert 0.0 <= m[f"mia.{attack}.auc"] <= 1.0
        assert f"mia.{attack}.privleak" in m
    assert set(full_result["metrics"]) == {"model", "original", "retain_model"}
    forget_rows = full_result["examples"]["forget"]
    assert len(forget_rows) == 6
    assert {"prompt", "reference", "generation", "original_generation", "nll", "mia_min_k"} <= set(
        forget_rows[0]
    )
    assert full_result["info"]["eval_cost"]["tokens"] > 0


def test_similarity_to_itself_is_perfect(tiny_model_dir, data, make_cfg):
    cfg = make_cfg(metrics=["utility"])
    m = evaluate(str(tiny_model_dir), data, cfg, original=str(tiny_model_dir))["metrics"]["model"]
    assert m["retain.rougeL_vs_original"] == pytest.approx(1.0)
    assert m["retain.kl_to_original"] == pytest.approx(0.0, abs=1e-6)
    # (cosine of identical non-empty texts is 1; empty pairs count 0)
    assert m["retain.cosine_vs_original"] == pytest.approx(1.0 - m["retain.empty_rate"], abs=1e-4)


def test_original_pass_is_cached(tiny_model_dir, other_tiny_dirs, data, make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_UNLEARN_CACHE", str(tmp_path))
    cfg = make_cfg(metrics=["generation", "likelihood", "mia", "utility"], cache_original=True)
    first = evaluate(str(tiny_model_dir), data, cfg, original=str(other_tiny_dirs[0]))
    second = evaluate(str(tiny_model_dir), data, cfg, original=str(other_tiny_dirs[0]))
    assert not first["info"]["eval_cost"]["original_from_cache"]
    assert second["info"]["eval_cost"]["original_from_cache"]
    assert len(list((tmp_path / "eval").glob("original-*.json"))) == 1
    assert set(second["metrics"]) == set(first["metrics"])
    for role, values in first["metrics"].items():
        assert second["metrics"][role] == pytest.approx(values, rel=1e-6)
    # Other settings are another key: nothing stale is reused.
    third = evaluate(
        str(tiny_model_dir),
        data,
        make_cfg(max_new_tokens=3, cache_original=True),
        original=str(other_tiny_dirs[0]),
    )
    assert not third["info"]["eval_cost"]["original_from_cache"]
