"""Likelihood metrics of a pass's scores: NLL, probability, perplexity, KL to the original,
memorisation (definitions: `catalog.SUFFIXES`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lm_unlearn.evaluation.memorization import memorization_metrics
from lm_unlearn.evaluation.passes import Pass, Suite


def likelihood_metrics(suite: Suite, p: Pass, examples: dict) -> dict:
    metrics: dict[str, Any] = {}
    for role, s in p.scores.items():
        nll = s.mean_nll
        metrics[f"{role}.nll"] = float(nll.mean())
        metrics[f"{role}.prob"] = float(np.exp(-nll).mean())
        all_lp = np.concatenate(s.token_logprob)
        metrics[f"{role}.ppl"] = float(np.exp(-all_lp.mean()))
        if s.kl is not None:
            metrics[f"{role}.kl_to_original"] = float(np.mean(s.kl))
        if role in ("forget", "heldout") and s.token_greedy:
            metrics.update({f"{role}.{k}": v for k, v in memorization_metrics(s.token_greedy).items()})
        records = suite.data.sets[role]
        rows = examples.setdefault(role, [{"prompt": r.prompt, "reference": r.response} for r in records])
        if len(rows) == len(nll):  # rows of generations cover only prompt records
            for row, value in zip(rows, nll):
                row["nll"] = float(value)
    return metrics
