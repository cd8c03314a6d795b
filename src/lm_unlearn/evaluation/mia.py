"""Membership inference: per-example scores (higher = "looks like training data"), AUC, PrivLeak.

AUCs here take the forget set as the members (label 1); MUSE's PrivLeak flips that (`muse_privleak`).

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


def grad_norm_score(tensor_norms: np.ndarray) -> float:
    """Gradient-norm attack (as evaluated on LLMs by Duan et al., 2024, "Do Membership Inference
    Attacks Work on Large Language Models?", arXiv 2402.17012, MIMIR's GradNormAttack; the form
    open-unlearning's `mia_gradnorm` computes): score = -(1/|W|) sum_W ||grad_W L(x)||_p, the
    mean over parameter tensors W of the p-norm (p = 2) of the gradient of the sample's mean
    token NLL (`grad_norms.gradient_norms`). A model sits near a minimum on its training data, so
    a smaller gradient means "more likely a member": the score is the negated mean norm.
    """
    return -float(np.mean(tensor_norms))


def auc(member_scores: list[float], nonmember_scores: list[float]) -> float:
    """ROC AUC of telling members (label 1) from non-members (label 0) by score (sklearn).

    0.5 is chance; for an unlearned model, forget-set examples are the "members" and the
    held-out set the non-members, so 0.5 means the forget set looks never seen.
    """
    labels = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(labels, list(member_scores) + list(nonmember_scores)))


MUSE_MIN_K = 0.4  # MUSE's PrivLeak uses Min-K% Prob with k = 40 % (its `eval_privleak`)


def muse_privleak(auc_unlearned: float, auc_retrain: float) -> float:
    """PrivLeak as MUSE reports it (Shi et al., 2024, "MUSE", Sec. 3; open-unlearning's `privleak`).

    MUSE labels the forget set the *non-members*, so its AUC is 1 - a for our member-convention
    AUC a (forget = member, `auc`). With a_u, a_r the unlearned and retrained models' AUCs:
        PrivLeak = 100 * (AUC_u - AUC_r) / AUC_r,   AUC = 1 - a,
                 = 100 * (a_r - a_u) / (1 - a_r).
    0: as private as a retrained model; < 0 under-unlearning (the forget set still looks like
    training data), > 0 over-unlearning. E.g. muse_privleak(0.99, 0.5) = -98.0. MUSE computes
    the AUCs with Min-K% at k = 0.4 (`MUSE_MIN_K`). NaN when a_r is 1 (MUSE's AUC_r is 0).
    """
    base = 1.0 - auc_retrain
    if base == 0:
        return float("nan")
    return 100.0 * ((1.0 - auc_unlearned) - base) / base
