"""Membership inference: per-example scores (higher = "looks like training data"), AUC, PrivLeak.

Written here rather than imported because each is a line or two over token log-probs that
the likelihood pass already holds; the formulas and sources are in each docstring.
"""

from __future__ import annotations

import zlib

import numpy as np
from sklearn.metrics import roc_auc_score


def loss_score(token_logprob: np.ndarray) -> float:
    """LOSS attack (Yeom et al., 2018): score = mean_t log p(x_t | x_<t) = -NLL."""
    return float(np.mean(token_logprob))


def zlib_score(token_logprob: np.ndarray, text: str) -> float:
    """zlib ratio (Carlini et al., 2021): score = mean_t log p(x_t) / len(zlib(text) bytes).

    Dividing by the compressed length discounts text that is likely simply because it is
    repetitive or generic. (As in the Min-K% and MUSE code bases.)
    """
    return float(np.mean(token_logprob)) / len(zlib.compress(text.encode("utf-8")))


def _lowest_k_mean(values: np.ndarray, k: float) -> float:
    n = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:n]))


def min_k_score(token_logprob: np.ndarray, k: float = 0.2) -> float:
    """Min-K% Prob (Shi et al., 2024): mean of the k-fraction lowest token log-probs,
    at least one token: score = (1/|S|) sum_{t in S} log p(x_t), S = the floor(k*T) lowest."""
    return _lowest_k_mean(token_logprob, k)


def min_k_pp_score(token_zscore: np.ndarray, k: float = 0.2) -> float:
    """Min-K%++ (Zhang et al., 2024): Min-K% over z_t = (log p(x_t) - mu_t) / sigma_t, where
    mu_t, sigma_t are the mean and std of log p(z) for z ~ p(. | x_<t) (see likelihood.py)."""
    return _lowest_k_mean(token_zscore, k)


def reference_score(token_logprob: np.ndarray, reference_logprob: np.ndarray) -> float:
    """Reference-model attack (Carlini et al., 2021): mean log p_target - mean log p_reference.

    Training data is what the target finds likelier than a reference that did not see it.
    """
    return float(np.mean(token_logprob) - np.mean(reference_logprob))


def auc(member_scores: list[float], nonmember_scores: list[float]) -> float:
    """ROC AUC of telling members (label 1) from non-members (label 0) by score (sklearn).

    0.5 is chance; for an unlearned model, forget-set examples are the "members" and the
    held-out set the non-members, so 0.5 means the forget set looks never seen.
    """
    labels = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(labels, list(member_scores) + list(nonmember_scores)))


def privleak(auc_unlearned: float, auc_retrain: float) -> float:
    """PrivLeak (MUSE, Shi et al., 2024): (AUC_unlearn - AUC_retrain) / AUC_retrain.

    0 means as private as a model retrained without the forget set; > 0 under-unlearning
    (forget data still looks like members), < 0 over-unlearning (it looks less than never seen).
    Undefined (NaN) when AUC_retrain is 0, which small forget/held-out sets can give.
    """
    if auc_retrain == 0:
        return float("nan")
    return (auc_unlearned - auc_retrain) / auc_retrain
