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
