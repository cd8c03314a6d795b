"""Text overlap and diversity: BLEU, ROUGE-L, distinct-n, unique-token ratio.

BLEU and ROUGE-L come from the reference implementations (sacrebleu, rouge-score) so that
numbers compare with published ones; only the diversity counts are written here (a few lines).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import sacrebleu
from rouge_score import rouge_scorer


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU in [0, 1] (Papineni et al., 2002) via sacrebleu.

    sacrebleu's `sentence_bleu` defaults: 13a tokenisation, effective n-gram order, and
    'exp' smoothing (Chen & Cherry, 2014, method 3) for n-gram orders with no match.
    BLEU = BP * exp(mean_n log p_n), BP = min(1, exp(1 - |ref| / |hyp|)).
    """
    if not hypothesis.strip() or not reference.strip():
        return 0.0
    return sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100.0


@lru_cache(maxsize=2)
def _rouge(stem: bool) -> rouge_scorer.RougeScorer:
    logging.getLogger("absl").setLevel(logging.WARNING)  # rouge-score logs each scorer it builds
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)


def rouge_l(hypothesis: str, reference: str, stem: bool = False) -> tuple[float, float, float]:
    """ROUGE-L (Lin, 2004) via rouge-score: (precision, recall, F1) of the longest common
    subsequence of lower-cased alphanumeric tokens. P = LCS/|hyp|, R = LCS/|ref|.

    `stem`: Porter-stem tokens first, as TOFU and open-unlearning do (`use_stemmer=True`);
    MUSE does not stem.
    """
    score = _rouge(stem).score(reference, hypothesis)["rougeL"]
    return score.precision, score.recall, score.fmeasure


def words(text: str) -> list[str]:
    return text.lower().split()


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique n-grams / all n-grams over a set of texts.

    0.0 when the texts hold no n-gram at all (e.g. empty or whitespace-only outputs), so that
    degenerate generations read as no diversity rather than as a missing value.
    """
    grams = [tuple(w[i : i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def unique_token_ratio(text: str) -> float:
    """Unique words / words in one text (repetition shows as a low ratio); 0.0 for empty text."""
    w = words(text)
    return len(set(w)) / len(w) if w else 0.0


def truncate_at_stop(text: str, stop: list[str]) -> str:
    """Cut `text` at the earliest occurrence of any stop string."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def is_empty(text: str) -> bool:
    return not text.strip()
