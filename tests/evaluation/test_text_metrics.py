import pytest

from lm_unlearn.evaluation import text_metrics as tm


def test_bleu_hand_computed():
    # hyp vs ref n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (BP = 1): no smoothing applies.
    value = tm.sentence_bleu("the cat sat on the mat", "the cat sat on a mat")
    assert value == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=1e-9)


def test_bleu_identical_and_empty():
    assert tm.sentence_bleu(
        "the capital of France is Paris", "the capital of France is Paris"
    ) == pytest.approx(1.0)
    assert tm.sentence_bleu("   ", "the capital") == 0.0


def test_rouge_l_hand_computed():
    # LCS of "the cat sat on the mat" and "the cat is on the mat" is "the cat on the mat" (5 words).
    p, r, f = tm.rouge_l("the cat sat on the mat", "the cat is on the mat")
    assert (p, r, f) == pytest.approx((5 / 6, 5 / 6, 5 / 6))
    p, r, f = tm.rouge_l("the cat", "the cat is on the mat")
    assert (p, r) == pytest.approx((1.0, 2 / 6))
    assert f == pytest.approx(2 * 1.0 * (2 / 6) / (1.0 + 2 / 6))


def test_distinct_n_and_unique_ratio():
    texts = ["a b a b", "a c"]
    # unigrams: a b a b a c -> 3 unique / 6; bigrams: ab ba ab ac -> 3 unique / 4
    assert tm.distinct_n(texts, 1) == pytest.approx(3 / 6)
    assert tm.distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert tm.unique_token_ratio("a b a b") == pytest.approx(0.5)


def test_degenerate_whitespace_outputs_score_zero_diversity():
    assert tm.distinct_n(["   ", "\n"], 1) == 0.0
    assert tm.unique_token_ratio("  ") == 0.0
    assert tm.is_empty(" \n\t")


def test_truncate_at_stop_uses_earliest():
    assert tm.truncate_at_stop("answer.\nQ: next\n###", ["###", "\nQ:"]) == "answer."
    assert tm.truncate_at_stop("no stop here", ["###"]) == "no stop here"


def test_rouge_l_stemming_by_hand():
    from lm_unlearn.evaluation.text_metrics import rouge_l

    # Unstemmed, only "the" is shared: LCS 1 of 3. Porter-stemmed, cats -> cat and runs -> run
    # ("ran" stays): LCS "the cat" = 2 of 3.
    assert rouge_l("the cats runs", "the cat ran") == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert rouge_l("the cats runs", "the cat run", stem=True) == pytest.approx((1.0, 1.0, 1.0))
    assert rouge_l("the cats runs", "the cat ran", stem=True)[2] == pytest.approx(2 / 3)


def test_rouge_stemming_follows_the_scenario_source(tmp_path):
    import json

    from lm_unlearn.config import DatasetConfig
    from lm_unlearn.evaluation import EvalConfig

    (tmp_path / "forget.jsonl").write_text('{"text": "a"}\n')
    cfg = EvalConfig(forget=DatasetConfig(path=str(tmp_path / "forget.jsonl")))
    assert cfg.rouge_stemming()[0] is True  # TOFU-style (and open-unlearning's) default
    meta = {"scenario": "converted:muse", "files": {"forget.jsonl": {"format": "muse"}}}
    (tmp_path / "scenario.json").write_text(json.dumps(meta))
    assert cfg.rouge_stemming() == (False, "MUSE source (scenario.json): MUSE does not stem")
    assert cfg.model_copy(update={"rouge_stemmer": True}).rouge_stemming()[0] is True
