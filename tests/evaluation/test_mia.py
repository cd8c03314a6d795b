import zlib

import numpy as np
import pytest

from lm_unlearn.evaluation import mia
from lm_unlearn.evaluation.forget_quality import false_answers, forget_quality, truth_ratio

LOGPROBS = np.array([-0.1, -2.0, -0.5, -3.0, -1.0])


def test_loss_and_min_k_on_fixed_vector():
    assert mia.loss_score(LOGPROBS) == pytest.approx(-6.6 / 5)
    # k = 0.4 of 5 tokens -> the 2 lowest: -3.0 and -2.0
    assert mia.min_k_score(LOGPROBS, 0.4) == pytest.approx(-2.5)
    # k = 0.1 -> floor(0.5) = 0, at least one token: the lowest
    assert mia.min_k_score(LOGPROBS, 0.1) == pytest.approx(-3.0)
    assert mia.min_k_score(LOGPROBS, 1.0) == pytest.approx(-6.6 / 5)


def test_min_k_pp_uses_z_scores():
    z = np.array([0.5, -1.5, 0.0, -0.5, 2.0])
    assert mia.min_k_pp_score(z, 0.4) == pytest.approx(-1.0)


def test_zlib_and_reference_scores():
    text = "Harry Potter attends Hogwarts."
    assert mia.zlib_score(LOGPROBS, text) == pytest.approx((-6.6 / 5) / len(zlib.compress(text.encode())))
    assert mia.reference_score(LOGPROBS, LOGPROBS - 0.25) == pytest.approx(0.25)


def test_auc_identical_distributions_is_half():
    scores = [0.1, 0.4, 0.4, 0.9]
    assert mia.auc(scores, scores) == pytest.approx(0.5)
    assert mia.auc([2.0, 3.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert mia.auc([0.0, 1.0], [2.0, 3.0]) == pytest.approx(0.0)


def test_muse_privleak_matches_muses_formula_by_hand():
    # MUSE: AUC over forget = non-member, PrivLeak = (AUC_u - AUC_r) / AUC_r * 100.
    # a_u = 0.99 (member convention) is MUSE's 0.01; a_r = 0.5 is 0.5: (0.01 - 0.5) / 0.5 * 100.
    assert mia.muse_privleak(0.99, 0.5) == -98.0
    assert mia.muse_privleak(0.7, 0.7) == 0.0
    # a_u = 0.6, a_r = 0.8: MUSE's 0.4 vs 0.2, (0.4 - 0.2) / 0.2 * 100 = +100 (over-unlearned).
    assert mia.muse_privleak(0.6, 0.8) == pytest.approx(100.0)
    assert mia.MUSE_MIN_K == 0.4


def test_ks_on_two_fixed_samples():
    # Fully separated samples of 4 and 4: D = 1, exact two-sided p = 2 / C(8, 4) = 2/70.
    pvalue, stat = forget_quality(np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0]))
    assert stat == pytest.approx(1.0)
    assert pvalue == pytest.approx(2 / 70)
    pvalue, stat = forget_quality(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    assert (pvalue, stat) == pytest.approx((1.0, 0.0))


def test_truth_ratio_hand_computed():
    ratio = truth_ratio(np.array([1.0, 2.0]), np.array([[2.0, 3.0], [2.0, 2.0]]))
    assert ratio == pytest.approx([np.exp(1.0 - 2.5), 1.0])


def test_false_answers_are_other_answers():
    assert false_answers(["a", "b", "c"], count=3) == [["b", "c"], ["c", "a"], ["a", "b"]]


def test_tofu_truth_ratio_summary_by_hand():
    from lm_unlearn.evaluation.forget_quality import tofu_truth_ratio_summary

    # min(R, 1/R): 2 -> 0.5, 0.5 -> 0.5, 1 -> 1; mean 2/3 (the raw mean of R would be 7/6).
    assert tofu_truth_ratio_summary(np.array([2.0, 0.5, 1.0])) == pytest.approx(2 / 3)


def test_model_utility_is_the_harmonic_mean_of_what_is_there():
    from lm_unlearn.evaluation.forget_quality import model_utility

    value, used = model_utility({"retain.prob": 0.5, "retain.rougeL_recall": 0.25, "forget.prob": 0.9})
    assert value == pytest.approx(2 / (1 / 0.5 + 1 / 0.25)) and used == [
        "retain.prob",
        "retain.rougeL_recall",
    ]
    assert model_utility({"retain.prob": 0.5, "unrelated.rougeL_recall": 0.0})[0] == 0.0
    assert model_utility({}) == (None, [])
