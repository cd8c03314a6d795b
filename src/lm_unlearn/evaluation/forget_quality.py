"""Forget quality against a retain-only model: truth ratio and the KS test (TOFU).

Definition used (Maini et al., 2024, "TOFU"):
    R_truth(q) = exp(NLL(a_true | q) - mean_j NLL(a_false_j | q)),
with NLL the mean per-token negative log-likelihood, i.e. the length-normalised probability of
the false answers (geometric mean over j) divided by that of the true answer. This is the
paper's P(false)/P(true) orientation with the averaging of TOFU's released code; TOFU's code
stores the reciprocal, which leaves the KS statistic and p-value unchanged (KS is invariant to
a monotone transform applied to both samples).
    forget quality = p-value of the two-sample KS test between the R_truth values of the
unlearned model and of the retain-only model on the forget questions. High (e.g. > 0.05)
means the two are indistinguishable.

TOFU's true answer is a paraphrase and its false answers are written to look alike. Unless
the data supply them, this toolkit uses the record's own answer as the true answer and the
answers of other forget questions as false answers (see `false_answers`).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp


def truth_ratio(true_nll: np.ndarray, false_nll: np.ndarray) -> np.ndarray:
    """R_truth per question: `true_nll` [N] and `false_nll` [N, J] mean per-token NLLs."""
    return np.exp(np.asarray(true_nll) - np.asarray(false_nll).mean(axis=1))


def forget_quality(unlearned_ratio: np.ndarray, retain_ratio: np.ndarray) -> tuple[float, float]:
    """(KS p-value, KS statistic) between the two models' truth ratios (scipy ks_2samp)."""
    result = ks_2samp(unlearned_ratio, retain_ratio)
    return float(result.pvalue), float(result.statistic)


def false_answers(answers: list[str], count: int = 3) -> list[list[str]]:
    """For question i, the answers of questions i+1 .. i+count (cyclically): fluent but wrong
    for question i. A stand-in for TOFU's written perturbations; needs >= 2 answers."""
    n = len(answers)
    count = min(count, n - 1)
    return [[answers[(i + j) % n] for j in range(1, count + 1)] for i in range(n)]
