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

TOFU's true answer is a paraphrase of the answer and its false answers are written to look
alike (its `forget*_perturbed` files). An evaluation config's `perturbed:` set supplies them
(`read_truth_items`); without one, the record's own answer is the true answer and the
answers of other forget questions are the false answers (`false_answers`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp

from lm_unlearn.config import DatasetConfig
from lm_unlearn.errors import DataError

TRUE_FIELD = "paraphrased_answer"
FALSE_FIELD = "perturbed_answers"  # TOFU's own files call it `perturbed_answer`; both are read


@dataclass(frozen=True)
class TruthItem:
    """One truth-ratio question: the true answer and the false ones."""

    prompt: str
    true: str
    false: tuple[str, ...]
    source: str


def read_truth_items(cfg: DatasetConfig) -> list[TruthItem]:
    """Truth-ratio questions from a file with `prompt`, `perturbed_answers` (a list of wrong
    answers) and optionally `paraphrased_answer` (the true answer; else `response`).

    The files `unlearn data make knowledge|privacy` and `unlearn data convert
    tofu|truthfulqa|halueval` write as `perturbed.jsonl` have this shape. Every record must
    have the same number of false answers, as TOFU's do, so each question weighs the same.
    """
    from lm_unlearn.data.records import dataset_rows

    items = []
    for where, row in dataset_rows(cfg, "perturbed"):
        prompt = row.get(cfg.prompt_field)
        true = row.get(TRUE_FIELD) or row.get(cfg.response_field)
        false = row.get(FALSE_FIELD, row.get("perturbed_answer"))
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{where}: field '{cfg.prompt_field}' must be a non-empty text")
        if not isinstance(true, str) or not true.strip():
            raise DataError(f"{where}: needs a text field '{TRUE_FIELD}' or '{cfg.response_field}'")
        texts = isinstance(false, list) and all(isinstance(a, str) and a.strip() for a in false)
        if not false or not texts:
            raise DataError(f"{where}: field '{FALSE_FIELD}' must be a non-empty list of texts")
        items.append(TruthItem(prompt, true, tuple(false), where))
    counts = {len(item.false) for item in items}
    if len(counts) > 1:
        first = next(i for i in items if len(i.false) != len(items[0].false))
        raise DataError(
            f"{first.source}: field '{FALSE_FIELD}' has {len(first.false)} answers, the first record "
            f"{len(items[0].false)}; every record needs the same number"
        )
    if not items:
        raise DataError(f"perturbed set {cfg.path} has no records")
    return items


def truth_ratio(true_nll: np.ndarray, false_nll: np.ndarray) -> np.ndarray:
    """R_truth per question: `true_nll` [N] and `false_nll` [N, J] mean per-token NLLs."""
    return np.exp(np.asarray(true_nll) - np.asarray(false_nll).mean(axis=1))


def tofu_truth_ratio_summary(ratios: np.ndarray) -> float:
    """TOFU's reported forget-set truth ratio: mean_q min(R_q, 1/R_q) (TOFU's released code),
    in (0, 1]; 1 when true and false answers are equally likely. `truth_ratio` is the raw mean of R."""
    r = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.minimum(r, 1.0 / r)))


# TOFU's model utility reads probability, ROUGE-L recall and truth ratio on retain, real-authors
# and world-facts sets; these are the ones an evaluation config here can supply.
UTILITY_PARTS = ("retain.prob", "retain.rougeL_recall", "unrelated.rougeL_recall")


def model_utility(values: dict[str, float | None]) -> tuple[float | None, list[str]]:
    """TOFU's model utility (Maini et al., 2024): the harmonic mean n / sum_i (1/v_i) of the
    `UTILITY_PARTS` present in `values`; 0 if any is 0. Returns (value, the parts used)."""
    used = [k for k in UTILITY_PARTS if values.get(k) is not None]
    if not used:
        return None, []
    parts = [float(values[k]) for k in used]
    return (0.0 if min(parts) <= 0 else len(parts) / sum(1.0 / v for v in parts)), used


def forget_quality(unlearned_ratio: np.ndarray, retain_ratio: np.ndarray) -> tuple[float, float]:
    """(KS p-value, KS statistic) between the two models' truth ratios (scipy ks_2samp)."""
    result = ks_2samp(unlearned_ratio, retain_ratio)
    return float(result.pvalue), float(result.statistic)


def items_from_answers(prompts: list[str], answers: list[str], count: int = 3) -> list[TruthItem]:
    """Truth-ratio questions without written perturbations: see `false_answers`."""
    return [
        TruthItem(p, a, tuple(f), f"forget record {i}")
        for i, (p, a, f) in enumerate(zip(prompts, answers, false_answers(answers, count)))
    ]


def false_answers(answers: list[str], count: int = 3) -> list[list[str]]:
    """For question i, the answers of questions i+1 .. i+count (cyclically): fluent but wrong
    for question i. A stand-in for TOFU's written perturbations; needs >= 2 answers."""
    n = len(answers)
    count = min(count, n - 1)
    return [[answers[(i + j) % n] for j in range(1, count + 1)] for i in range(n)]
