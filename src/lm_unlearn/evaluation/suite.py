"""The evaluation suite: generate and score once per model and data set, then read every metric.

`evaluate(model, data, cfg, original=..., retain_model=...)` returns a JSON-ready dict:
  metrics:  {"model": {name: value}, "original": {...}, "retain_model": {...}}  flat names
            such as "forget.rougeL", "mia.min_k.auc", "forget_quality.ks_pvalue"
  examples: {set: [per-example rows]} for the evaluated model (and the original's generations)
  info:     models, judge, definitions, timing

The passes (`evaluation/passes.py`) run the models; the metric groups (`evaluation/metrics/`)
read them.
"""

from __future__ import annotations

import time
from typing import Any

from lm_unlearn.evaluation import forget_quality as fq
from lm_unlearn.evaluation.catalog import LM_EVAL_PREFIX, SUFFIXES
from lm_unlearn.evaluation.config import EvalConfig
from lm_unlearn.evaluation.harness import definition
from lm_unlearn.evaluation.judges import build_judge
from lm_unlearn.evaluation.metrics.likelihood import likelihood_metrics
from lm_unlearn.evaluation.metrics.membership import attack_reference, can_attack, membership_metrics
from lm_unlearn.evaluation.metrics.text import text_metrics
from lm_unlearn.evaluation.metrics.truth import add_forget_quality, add_model_utility
from lm_unlearn.evaluation.passes import (
    EvalData,
    Pass,
    Suite,
    as_loaded,
    load_eval_data,
    retain_model_pass,
    run_passes,
)
from lm_unlearn.memory import peak_rss_bytes, reset_peak_rss
from lm_unlearn.models import LoadedModel
from lm_unlearn.precision import resolve_precision

__all__ = ["EvalData", "evaluate", "load_eval_data"]


def evaluate(
    model: str | LoadedModel,
    data: EvalData,
    cfg: EvalConfig | None = None,
    *,
    original: str | LoadedModel | None = None,
    retain_model: str | LoadedModel | None = None,
    reference_model: str | LoadedModel | None = None,
) -> dict[str, Any]:
    """Evaluate `model` (and, as the "before", `original`) on `data`; see the module docstring.

    `retain_model` never saw the forget set (TOFU's retain-only, MUSE's retrained model): it
    anchors PrivLeak and forget quality, and is the reference-model attack's reference.
    `reference_model`, used only without a `retain_model`, is another model that never saw it.
    """
    cfg = cfg or EvalConfig()
    started = time.perf_counter()
    reset_peak_rss()
    suite = Suite(data, cfg, resolve_precision(cfg.precision, "evaluation"))
    lm, orig, retain = as_loaded(model), as_loaded(original), as_loaded(retain_model)
    judge = build_suite_judge(suite)
    phases: dict[str, float] = {}
    passes, cached_original = run_passes(suite, lm, orig, phases)
    retain_pass = retain_model_pass(suite, retain)
    metrics, examples = read_metrics(suite, passes, retain_pass, judge)
    mia_defs: dict[str, Any] = {}
    if "mia" in suite.groups and can_attack(passes["model"]):
        reference, ref_name = attack_reference(suite, retain_pass, as_loaded(reference_model))
        mia_defs = membership_metrics(suite, passes, retain_pass, reference, metrics, examples)
        mia_defs["reference_model"] = ref_name
    if "forget_quality" in suite.groups and retain is not None and data.truth:
        models = {"model": lm, "retain_model": retain, "original": orig}
        add_forget_quality(suite, models, metrics, examples)
    utility_parts = add_model_utility(metrics)
    wall = time.perf_counter() - started
    phases["other (metrics, judge, retain model)"] = round(wall - sum(phases.values()), 2)
    tokens = sum(p.tokens for p in passes.values()) + (retain_pass.tokens if retain_pass else 0)
    cost = {
        "wall_s": round(wall, 2),
        "tokens": int(tokens),
        "peak_rss_bytes": peak_rss_bytes(),
        "phases_s": phases,
        "original_from_cache": cached_original,
    }
    models = {"model": lm, "original": orig, "retain_model": retain}
    info = eval_info(suite, models, judge, mia_defs, utility_parts, cost)
    return {"version": 1, "metrics": metrics, "examples": examples, "info": info}


def build_suite_judge(suite: Suite):
    """The judge of generations (None without the generation group)."""
    if "generation" not in suite.groups:
        return None
    sets = suite.data.sets
    return build_judge(
        suite.cfg.judge_config(),
        [r.response for r in sets["forget"] if r.response],
        [r.response for r in sets.get("retain", [])],
    )


def read_metrics(
    suite: Suite, passes: dict[str, Pass], retain_pass: Pass | None, judge
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict]]]:
    """Text and likelihood metrics per model, and the evaluated model's per-example rows."""
    needs_lik = suite.groups & {"likelihood", "mia", "utility", "forget_quality"}
    metrics: dict[str, dict[str, Any]] = {}
    examples: dict[str, list[dict]] = {}
    for name, p in passes.items():
        m, ex = text_metrics(suite, p, judge, passes.get("original"))
        if needs_lik:
            m.update(likelihood_metrics(suite, p, ex))
        m.update({f"{LM_EVAL_PREFIX}{k}": v for k, v in p.lm_eval.items()})
        metrics[name] = m
        if name == "model":
            examples = ex
    if retain_pass is not None:
        metrics["retain_model"] = likelihood_metrics(suite, retain_pass, {})
    return metrics, examples


def eval_info(
    suite: Suite,
    models: dict[str, LoadedModel | None],
    judge,
    mia_defs: dict[str, Any],
    utility_parts: list[str],
    cost: dict[str, Any],
) -> dict[str, Any]:
    """eval.json's `info`: the models, judge, sets, settings, metric definitions and cost."""
    data = suite.data
    lm_eval = {"lm_eval": definition(suite.cfg.lm_eval)} if suite.cfg.lm_eval is not None else {}
    return {
        "models": {name: lm.spec if lm else None for name, lm in models.items()},
        "judge": getattr(judge, "name", None),
        "sets": {role: len(recs) for role, recs in data.sets.items()} | {"extraction": len(data.extraction)},
        "groups": sorted(suite.groups),
        "precision": suite.precision,
        "config": suite.cfg.model_dump(mode="json"),
        "definitions": SUFFIXES
        | {
            "mia": mia_defs,
            "forget_quality": fq.__doc__.strip(),
            "truth_ratio_answers": f"{len(data.truth)} questions; answers from the {data.truth_source}",
            "rouge_stemmer": {"stem": suite.stem, "why": suite.stem_why},
            "model_utility": "TOFU's model utility, the harmonic mean, here of "
            + (", ".join(utility_parts) or "nothing (no retain or unrelated set)")
            + "; TOFU's real-authors/world-facts probabilities and truth ratios need sets not given",
        }
        | lm_eval,
        "eval_cost": cost,
    }
