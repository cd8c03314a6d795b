"""Forget quality (TOFU): truth ratios of the model, the retain model and the original on the
truth-ratio questions, the KS test against the retain model's, and TOFU's model utility."""

from __future__ import annotations

from typing import Any

import numpy as np

from lm_unlearn.data import Record
from lm_unlearn.evaluation import forget_quality as fq
from lm_unlearn.evaluation.likelihood import score_records
from lm_unlearn.evaluation.passes import Suite
from lm_unlearn.models import LoadedModel


def add_forget_quality(
    suite: Suite, models: dict[str, LoadedModel | None], metrics: dict[str, dict], examples: dict
) -> None:
    """Truth ratios and KS forget quality into `metrics` (and each forget row's truth ratio);
    needs the retain model ("retain_model" in `models`)."""
    ratios = {
        name: truth_ratios(suite, lm, suite.data.truth) for name, lm in models.items() if lm is not None
    }
    for name, r in ratios.items():
        metrics.setdefault(name, {})["forget_quality.truth_ratio"] = float(np.mean(r))
        metrics[name]["forget_quality.truth_ratio_tofu"] = fq.tofu_truth_ratio_summary(r)
        if name != "retain_model":
            pvalue, stat = fq.forget_quality(r, ratios["retain_model"])
            metrics[name]["forget_quality.ks_pvalue"] = pvalue
            metrics[name]["forget_quality.ks_stat"] = stat
    forget_rows = examples.get("forget", [])
    if [row["prompt"] for row in forget_rows] == [item.prompt for item in suite.data.truth]:
        for row, v in zip(forget_rows, ratios["model"]):
            row["truth_ratio"] = float(v)


def add_model_utility(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """TOFU's model utility into each model's metrics; returns the parts the model's rests on."""
    for m in metrics.values():
        if (value := fq.model_utility(m)[0]) is not None:
            m["utility.model_utility"] = value
    return fq.model_utility(metrics["model"])[1]


def truth_ratios(suite: Suite, lm: LoadedModel, items: list[fq.TruthItem]) -> np.ndarray:
    """TOFU truth ratio per question (`fq.truth_ratio`), scored in fp32 over answer tokens."""
    fmt = suite.fmt(lm)
    kw = dict(
        max_length=suite.cfg.max_length,
        batch_size=max(1, suite.cfg.batch_size // 2),
        precision=suite.precision,
        zscores=False,
    )
    true = [Record(item.prompt, item.true, item.source) for item in items]
    true_nll = score_records(lm.model, fmt, true, desc="truth ratio: true answers", **kw).mean_nll
    flat = [Record(item.prompt, a, f"{item.source} (false answer)") for item in items for a in item.false]
    false_scores = score_records(lm.model, fmt, flat, desc="truth ratio: false answers", **kw)
    false_nll = false_scores.mean_nll.reshape(len(items), -1)
    return fq.truth_ratio(true_nll, false_nll)
