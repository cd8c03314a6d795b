"""Exact memorization and extraction strength: what greedy decoding reproduces of an answer.

Both read teacher-forced greedy matches: at each answer position t, whether the model's most
likely next token given the prompt and the *true* answer prefix y_<t is the true token y_t
(argmax_v p(v | x, y_<t) == y_t). They come from the same forward pass as the likelihoods
(likelihood.score_records), as open-unlearning computes them (`exact_memorization`,
`extraction_strength` in its evals/metrics/memorization.py).
"""

from __future__ import annotations

import numpy as np
import torch


def greedy_hits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Bool of targets' shape ([B, T], or [N] response tokens): argmax of logits[b, t]
    (predicting position t's token) == targets[b, t].

    Pass logits already aligned with their targets (logits[:, :-1] with labels[:, 1:]); ties
    go to the lowest token id, as torch.argmax breaks them. Masking is the caller's.
    """
    return logits.argmax(dim=-1) == targets


def exact_memorization(hits: np.ndarray) -> float | None:
    """EM = (1/|y|) * sum_t 1[argmax_v p(v | x, y_<t) = y_t], the greedy token match rate
    (Tirumala et al., "Memorization Without Overfitting", NeurIPS 2022; used for unlearning by
    Wang et al., "Towards Effective Evaluations and Comparisons for LLM Unlearning Methods",
    ICLR 2025). None for an answer of no tokens."""
    return float(np.mean(hits)) if len(hits) else None


def extraction_strength(hits: np.ndarray) -> float | None:
    """ES = 1 - k/|y|, k = min {k : argmax_v p(v | x, y_<t) = y_t for every t >= k}
    (Carlini et al. 2021's extraction, as Wang et al., ICLR 2025 define ES for unlearning):
    the share of the answer a greedy decoder reproduces from the shortest true prefix, under
    teacher forcing, i.e. the trailing run of matches over |y|. k = |y| (ES = 0) when even the
    last token is missed; open-unlearning's loop stops at k = |y| - 1 there, reporting 1/|y|.
    None for an answer of no tokens."""
    n = len(hits)
    if n == 0:
        return None
    misses = np.flatnonzero(~np.asarray(hits, dtype=bool))
    k = int(misses[-1]) + 1 if len(misses) else 0
    return 1.0 - k / n


def memorization_metrics(hits: list[np.ndarray]) -> dict[str, float | None]:
    """Means over examples of EM and ES (answers of no tokens left out)."""
    found = {}
    for name, fn in (
        ("exact_memorization", exact_memorization),
        ("extraction_strength", extraction_strength),
    ):
        values = [v for v in map(fn, hits) if v is not None]
        found[name] = float(np.mean(values)) if values else None
    return found
