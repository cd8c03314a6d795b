import logging
import re

import pytest

from lm_unlearn.evaluation import evaluate
from lm_unlearn.evaluation.metrics.membership import ATTACKS


def test_privleak_and_forget_quality_when_model_is_the_retain_model(tiny_model_dir, data, make_cfg):
    cfg = make_cfg(metrics=["mia", "forget_quality"])
    result = evaluate(str(tiny_model_dir), data, cfg, retain_model=str(tiny_model_dir))
    m = result["metrics"]["model"]
    for attack in ("loss", "zlib", "min_k", "min_k40", "min_k_pp"):
        assert m[f"mia.{attack}.privleak"] == pytest.approx(0.0, abs=1e-9)
    assert m["mia.privleak"] == m["mia.min_k40.privleak"]
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
        assert (f"mia.{attack}.privleak" in m) == (attack != "ref")  # the retain model is ref's reference
    assert "mia.privleak" in m
    assert full_result["info"]["definitions"]["mia"]["reference_model"] == "retain_model"
    assert full_result["info"]["definitions"]["rouge_stemmer"]["stem"] is True  # the demo is TOFU-style
    assert "forget_quality.truth_ratio_tofu" in m
    parts = (m["retain.prob"], m["retain.rougeL_recall"], m["unrelated.rougeL_recall"])
    expected = (
        0.0 if min(parts) == 0 else 3 / sum(1 / v for v in parts)
    )  # a random tiny model recalls nothing
    assert m["utility.model_utility"] == pytest.approx(expected)
    assert (
        "retain.prob, retain.rougeL_recall, unrelated.rougeL_recall"
        in full_result["info"]["definitions"]["model_utility"]
    )
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


def bars(stderr: str) -> set[str]:
    """The labels of the progress bars in captured stderr that show a count and an ETA."""
    return set(re.findall(r"(\w[\w ]*: [a-z][a-z ]*\w): +\d+%\|[^|]*\| \d+/\d+ \[\d\d:\d\d<", stderr))


def test_original_pass_is_cached(
    tiny_model_dir, other_tiny_dirs, data, make_cfg, tmp_path, monkeypatch, caplog, capsys
):
    monkeypatch.setenv("LM_UNLEARN_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO, logger="lm_unlearn.evaluation.passes")
    cfg = make_cfg(metrics=["generation", "likelihood", "mia", "utility"], cache_original=True)
    capsys.readouterr()
    first = evaluate(str(tiny_model_dir), data, cfg, original=str(other_tiny_dirs[0]))
    first_bars, first_log = bars(capsys.readouterr().err), caplog.text
    caplog.clear()
    second = evaluate(str(tiny_model_dir), data, cfg, original=str(other_tiny_dirs[0]))
    second_bars = bars(capsys.readouterr().err)
    assert not first["info"]["eval_cost"]["original_from_cache"]
    assert second["info"]["eval_cost"]["original_from_cache"]
    # Each pass shows a bar with counts and an ETA; the cached original's passes are skipped,
    # and the log says so.
    for name in ("generation", "likelihood forget", "gradient norms forget", "fluency retain"):
        assert f"model: {name}" in first_bars and f"model: {name}" in second_bars, (name, first_bars)
    assert "original: generation" in first_bars and "original: likelihood forget" in first_bars
    assert not any(b.startswith("original") for b in second_bars), second_bars
    assert "read from the cache" not in first_log
    assert "original's generations and scores read from the cache" in caplog.text
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


def _write_jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_truth_ratio_uses_the_perturbed_set(tiny_model_dir, tmp_path, make_cfg):
    """forget_quality.truth_ratio = mean_i exp(NLL(paraphrased_i) - mean_j NLL(perturbed_ij)),
    recomputed here from per-answer NLLs scored one answer at a time."""
    import numpy as np

    from lm_unlearn.config import DatasetConfig
    from lm_unlearn.data import PromptFormat, Record
    from lm_unlearn.evaluation import load_eval_data
    from lm_unlearn.evaluation.likelihood import score_records
    from lm_unlearn.models import load_model

    rows = [
        {
            "prompt": "Who wrote it?",
            "response": "Ann",
            "paraphrased_answer": "It was Ann.",
            "perturbed_answers": ["It was Bob.", "Carl did."],
        },
        {
            "prompt": "Where is it?",
            "response": "Rome",
            "paraphrased_answer": "In Rome.",
            "perturbed_answers": ["In Oslo.", "Lima, Peru."],
        },
    ]
    perturbed = DatasetConfig(path=str(_write_jsonl(tmp_path / "p.jsonl", rows)))
    cfg = make_cfg(metrics=["forget_quality"], perturbed=perturbed)
    data = load_eval_data(cfg)
    assert data.truth_source == "perturbed set" and len(data.truth) == 2
    result = evaluate(str(tiny_model_dir), data, cfg, retain_model=str(tiny_model_dir))

    lm = load_model(str(tiny_model_dir))
    fmt = PromptFormat.choose(lm.tokenizer, "auto", None)

    def nll(prompt, answer):
        s = score_records(lm.model, fmt, [Record(prompt, answer, "t")], batch_size=1, zscores=False)
        return float(s.mean_nll[0])

    ratios = []
    for r in rows:
        false_nll = np.mean([nll(r["prompt"], a) for a in r["perturbed_answers"]])
        ratios.append(np.exp(nll(r["prompt"], r["paraphrased_answer"]) - false_nll))
    expected = np.mean(ratios)
    assert result["metrics"]["model"]["forget_quality.truth_ratio"] == pytest.approx(expected, rel=1e-4)
    assert "perturbed set" in result["info"]["definitions"]["truth_ratio_answers"]


def test_perturbed_set_errors_name_record_and_field(tmp_path):
    from lm_unlearn.config import DatasetConfig
    from lm_unlearn.errors import DataError
    from lm_unlearn.evaluation.forget_quality import read_truth_items

    bad = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "response": "a", "perturbed_answers": "x"}])
    with pytest.raises(DataError, match=r"p.jsonl: line 1: field 'perturbed_answers'"):
        read_truth_items(DatasetConfig(path=str(bad)))
    uneven = _write_jsonl(
        tmp_path / "u.jsonl",
        [
            {"prompt": "q", "response": "a", "perturbed_answers": ["b", "c"]},
            {"prompt": "r", "response": "a", "perturbed_answer": ["b"]},
        ],
    )
    with pytest.raises(DataError, match=r"u.jsonl: line 2: .* 1 answers, the first record 2"):
        read_truth_items(DatasetConfig(path=str(uneven)))


def test_reference_attack_never_uses_the_original(tiny_model_dir, other_tiny_dirs, data, make_cfg):
    # Only an original given: it saw the forget set, so the attack is skipped with a note.
    cfg = make_cfg(metrics=["mia"])
    result = evaluate(str(tiny_model_dir), data, cfg, original=str(other_tiny_dirs[0]))
    assert not any(k.startswith("mia.ref.") for m in result["metrics"].values() for k in m)
    assert result["info"]["definitions"]["mia"]["reference_model"].startswith("none: skipped")


def test_reference_attack_scores_against_the_reference_model(tiny_model_dir, other_tiny_dirs, data, make_cfg):
    from lm_unlearn.evaluation import mia
    from lm_unlearn.evaluation.passes import Pass, Suite
    from lm_unlearn.models import load_model

    cfg = make_cfg(metrics=["mia"])
    original, reference = (str(d) for d in other_tiny_dirs)
    result = evaluate(str(tiny_model_dir), data, cfg, original=original, reference_model=reference)
    assert result["info"]["definitions"]["mia"]["reference_model"] == f"reference_model ({reference})"
    assert "mia.ref.auc" in result["metrics"]["original"]  # the original is attacked, not the reference
    # Each row's score: mean token log-prob under the model minus that under the reference.
    suite, by_model = Suite(data, cfg, "fp32"), {}
    for name, spec in (("model", str(tiny_model_dir)), ("reference", reference)):
        by_model[name] = Pass()
        suite.likelihoods(load_model(spec), by_model[name], None, roles=("forget",))
    expected = [
        mia.reference_score(a, b)
        for a, b in zip(
            by_model["model"].scores["forget"].token_logprob,
            by_model["reference"].scores["forget"].token_logprob,
        )
    ]
    got = [row["mia_ref"] for row in result["examples"]["forget"]]
    assert got == pytest.approx(expected, abs=1e-6)
