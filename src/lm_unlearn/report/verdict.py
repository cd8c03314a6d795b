"""Did the unlearning work? eval.json -> a few headline rows, each judged against a threshold.

A pure function of the eval result (and the thresholds in `EvalConfig.verdict`): no files, no
models. The rows, in order:

  forgotten    forget.judge_rate (model) <= forget_judge_rate_max; without a judge, TOFU's forget
               quality (forget_quality.ks_pvalue, evaluated with a retain-only model) >=
               forget_quality_min; without either, forget.rougeL is shown and not judged
  generalises  paraphrased.judge_rate <= forget_judge_rate_max (the same bound: rewording a
               forget question should not bring the answer back)
  kept         retain.rougeL_vs_original >= retain_rougeL_min (normal answers as the original's)
  unrelated    unrelated.bleu_vs_original >= unrelated_bleu_min
  privacy      mia.privleak (with a retrain model), else a membership-inference AUC; judged only
               when privleak_abs_max is set

Similarity "before" values are 1: the original matches itself by definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lm_unlearn.evaluation.config import VerdictConfig

MIA_AUCS = ("mia.min_k.auc", "mia.loss.auc", "mia.zlib.auc", "mia.min_k_pp.auc", "mia.ref.auc")
KEPT = ("kept", "unrelated")
FORGET_QUALITY = "forget_quality.ks_pvalue"


@dataclass(frozen=True)
class VerdictRow:
    key: str  # forgotten, generalises, kept, unrelated, privacy
    title: str
    metric: str  # the eval.json metric name
    before: float | None  # the original model
    after: float | None  # the unlearned model
    retrain: float | None  # the retain-only model, when evaluated
    target: str  # the threshold in words, e.g. "≤ 10 %"; "" when not judged
    passed: bool | None  # None: shown, not judged
    summary: str  # the whole row in plain words

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "·"}[self.passed]


@dataclass(frozen=True)
class Overall:
    passed: bool | None
    text: str


def thresholds_of(result: dict[str, Any]) -> VerdictConfig:
    """The thresholds the evaluation recorded (info.config.verdict), else the defaults."""
    recorded = result.get("info", {}).get("config", {}).get("verdict")
    return VerdictConfig.model_validate(recorded or {})


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def show(metric: str, value: float | None) -> str:
    """A headline value as the panel writes it: shares as percent, attack scores as numbers."""
    if value is None:
        return "–"
    return f"{value:.3g}" if metric.startswith(("mia.", "forget_quality.")) else pct(value)


def _values(result: dict[str, Any], name: str) -> tuple[float | None, float | None, float | None]:
    metrics = result.get("metrics", {})
    before = 1.0 if name.endswith("_vs_original") else _num(metrics.get("original", {}).get(name))
    retrain = _num(metrics.get("retain_model", {}).get(name))
    return before, _num(metrics.get("model", {}).get(name)), retrain


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def forgotten_row(result: dict[str, Any], t: VerdictConfig) -> VerdictRow:
    before, after, retrain = _values(result, "forget.judge_rate")
    if after is None and _values(result, FORGET_QUALITY)[1] is not None:
        return forget_quality_row(result, t)
    if after is None:  # no judge, no retain-only model: show the answer overlap, judge nothing
        before, after, retrain = _values(result, "forget.rougeL")
        summary = (
            "Forgotten: not judged, as no judge was configured (set `judge:` in the eval config) "
            "and no retain-only model gave a forget quality; "
            f"answer overlap with the forget answers (ROUGE-L) {pct(before)} → {pct(after)}"
        )
        return VerdictRow(
            "forgotten", "Forgotten", "forget.rougeL", before, after, retrain, "", None, summary
        )
    target = f"≤ {pct(t.forget_judge_rate_max)}"
    passed = _at_most(after, t.forget_judge_rate_max)
    summary = f"Forgotten: answers judged to still know it {pct(before)} → {pct(after)} (target {target})"
    _, heldout, _ = _values(result, "heldout.judge_rate")
    if heldout is not None:
        summary += f"; held-out forget-like prompts {pct(heldout)}"
    return VerdictRow(
        "forgotten", "Forgotten", "forget.judge_rate", before, after, retrain, target, passed, summary
    )


def forget_quality_row(result: dict[str, Any], t: VerdictConfig) -> VerdictRow:
    """Forgotten, judged by TOFU's forget quality: how far the truth ratios on the forget questions
    are from the retain-only model's (a KS-test p-value; higher = closer to never trained)."""
    before, after, retrain = _values(result, FORGET_QUALITY)
    target = f"≥ {t.forget_quality_min:g}"
    was = "–" if before is None else f"{before:.3g}"
    summary = (
        f"Forgotten: forget quality (TOFU: KS-test p-value against the retain-only model's truth "
        f"ratios) {was} → {after:.3g} (target {target})"
    )
    passed = _at_least(after, t.forget_quality_min)
    return VerdictRow(
        "forgotten", "Forgotten", FORGET_QUALITY, before, after, retrain, target, passed, summary
    )


def generalises_row(result: dict[str, Any], t: VerdictConfig) -> VerdictRow | None:
    before, after, retrain = _values(result, "paraphrased.judge_rate")
    if after is None:
        return None
    target = f"≤ {pct(t.forget_judge_rate_max)}"
    summary = (
        f"Generalises: reworded forget questions judged to know it {pct(before)} → {pct(after)} "
        f"(target {target})"
    )
    passed = _at_most(after, t.forget_judge_rate_max)
    return VerdictRow(
        "generalises",
        "Generalises",
        "paraphrased.judge_rate",
        before,
        after,
        retrain,
        target,
        passed,
        summary,
    )


def kept_row(result: dict[str, Any], t: VerdictConfig) -> VerdictRow | None:
    what = "Model kept: normal answers match the original's {} (ROUGE-L; want {})"
    return _at_least_row(
        result, "retain.rougeL_vs_original", ("kept", "Model kept"), what, t.retain_rougeL_min
    )


def unrelated_row(result: dict[str, Any], t: VerdictConfig) -> VerdictRow | None:
    what = "Unrelated kept: unrelated answers match the original's {} (BLEU; want {})"
    return _at_least_row(
        result, "unrelated.bleu_vs_original", ("unrelated", "Unrelated kept"), what, t.unrelated_bleu_min
    )


def _at_least_row(
    result: dict[str, Any], metric: str, names: tuple[str, str], what: str, minimum: float
) -> VerdictRow | None:
    """A row whose metric should stay at least `minimum` (a similarity to the original)."""
    before, after, retrain = _values(result, metric)
    if after is None:
        return None
    target = f"≥ {pct(minimum)}"
    passed = _at_least(after, minimum)
    return VerdictRow(*names, metric, before, after, retrain, target, passed, what.format(pct(after), target))


def privacy_row(result: dict[str, Any], t: VerdictConfig) -> VerdictRow | None:
    before, after, retrain = _values(result, "mia.privleak")
    if after is not None:
        bound = t.privleak_abs_max
        target = "" if bound is None else f"|PrivLeak| ≤ {bound:g}"
        passed = None if bound is None else abs(after) <= bound
        summary = f"Privacy: PrivLeak {after:.3g} (0 = like the retrained model, < 0 still recognisable)"
        summary += f" (target {target})" if target else ""
        return VerdictRow(
            "privacy", "Privacy", "mia.privleak", before, after, retrain, target, passed, summary
        )
    for name in MIA_AUCS:
        before, after, retrain = _values(result, name)
        if after is not None:
            was = f"{before:.2f} → " if before is not None else ""
            summary = (
                f"Privacy: membership-inference AUC {was}{after:.2f} (0.5 = forget set indistinguishable)"
            )
            return VerdictRow("privacy", "Privacy", name, before, after, retrain, "", None, summary)
    return None


def verdict_rows(result: dict[str, Any], thresholds: VerdictConfig | None = None) -> list[VerdictRow]:
    """The headline rows of an eval.json result (thresholds: as recorded in it, else defaults)."""
    t = thresholds or thresholds_of(result)
    rows = [
        forgotten_row(result, t),
        generalises_row(result, t),
        kept_row(result, t),
        unrelated_row(result, t),
        privacy_row(result, t),
    ]
    return [r for r in rows if r is not None]


def overall(rows: list[VerdictRow]) -> Overall:
    """One line: was the forget target met, and was the model kept?"""
    by = {r.key: r for r in rows}
    forgot = by["forgotten"].passed if "forgotten" in by else None
    kept = [by[k] for k in KEPT if k in by and by[k].passed is not None]
    damaged = [r.title.lower() for r in kept if not r.passed]
    if forgot is None:
        return Overall(None, "Cannot say whether it was forgotten: no judge and no forget quality.")
    if not kept:
        word = "met" if forgot else "not met"
        return Overall(None, f"Forget target {word}; whether the model was kept was not measured.")
    if forgot and not damaged:
        general = by.get("generalises")
        if general is not None and general.passed is False:
            return Overall(False, "Partly: forgotten and kept, but reworded questions still bring it back.")
        return Overall(True, "Worked: the forget target is met and the model is kept.")
    if forgot:
        return Overall(False, f"Forgotten, but the model was damaged ({', '.join(damaged)} failed).")
    if not damaged:
        return Overall(False, "Not forgotten enough; the model is kept.")
    return Overall(False, "Did not work: not forgotten enough, and the model was damaged.")


def tradeoff_key(rows: list[VerdictRow]) -> tuple:
    """Sort key, best trade-off first: verdicts met, then least remembered (lowest judge rate or
    ROUGE-L, highest forget quality), then best kept."""
    by = {r.key: r for r in rows}
    passed = sum(1 for r in rows if r.passed)
    forgot = by.get("forgotten")
    kept = by.get("kept")
    remembered = forgot.after if forgot is not None and forgot.after is not None else math.inf
    if forgot is not None and forgot.metric == FORGET_QUALITY and forgot.after is not None:
        remembered = -forgot.after  # higher forget quality = less remembered
    similarity = kept.after if kept is not None and kept.after is not None else -math.inf
    return (-passed, remembered, -similarity)
