"""The report's first screen: the verdict panel, before/after answers, training curves and the
forget-utility trade-off. Pure functions of eval.json (already redacted when asked) and the run's
metrics.jsonl rows and manifest.json; every string from data or models is escaped here."""

from __future__ import annotations

import difflib
import re
from html import escape
from typing import Any

from lm_unlearn.evaluation.config import VerdictConfig
from lm_unlearn.report.plots import LABELS, tradeoff_scatter, training_curves
from lm_unlearn.report.tables import REDACTED, img
from lm_unlearn.report.verdict import VerdictRow, overall, pct, show, thresholds_of, verdict_rows
from lm_unlearn.rundir import Manifest

# metrics.jsonl keys that are bookkeeping, not loss terms; val_* are validation signals.
NOT_TERMS = {"step", "lr", "grad_norm", "tokens", "elapsed_s", "forget_nll"}
# Curve panels beside the loss terms: keys of like units share one.
PANELS = (
    ("NLL (higher on forget = more forgotten)", ["forget_nll", "val_forget_nll", "val_retain_nll"]),
    ("validation shares", ["val_judge_rate", "val_retain_similarity"]),
    ("retain KL to the original", ["val_retain_kl"]),
)
ANSWER_SIDES = (("forget", "Forget prompts"), ("retain", "Normal prompts"))


def verdict_item(row: VerdictRow) -> str:
    rest = row.summary.removeprefix(row.title)  # summaries open with the title, set in bold
    cls = {True: "pass", False: "fail", None: "info"}[row.passed]
    retrain = f"; retrain-only model: {show(row.metric, row.retrain)}" if row.retrain is not None else ""
    return (
        f'<li class="{cls}"><span class="mark">{row.mark}</span> <b>{escape(row.title)}</b>{escape(rest)}'
        f"<span class='desc'> ({escape(row.metric)}{escape(retrain)})</span></li>"
    )


def verdict_panel(result: dict[str, Any], thresholds: VerdictConfig | None = None) -> str:
    """The overall line, the headline rows, and where the thresholds come from."""
    t = thresholds or thresholds_of(result)
    rows = verdict_rows(result, t)
    verdict = overall(rows)
    cls = {True: "pass", False: "fail", None: "info"}[verdict.passed]
    mark = {True: "✓", False: "✗", None: "?"}[verdict.passed]
    note = (
        f"Targets: forget answers judged to know it ≤ {pct(t.forget_judge_rate_max)}, normal answers "
        f"vs the original ROUGE-L ≥ {pct(t.retain_rougeL_min)}, unrelated answers vs the original BLEU "
        f"≥ {pct(t.unrelated_bleu_min)}; set them under <code>verdict:</code> in the eval config."
    )
    return (
        f'<section id="verdict"><p class="overall {cls}">{mark} {escape(verdict.text)}</p>'
        f"<ul class='verdict'>{''.join(verdict_item(r) for r in rows)}</ul>"
        f"<p class='desc'>{note}</p></section>"
    )


def word_diff(before: str, after: str) -> tuple[str, str]:
    """Both texts escaped, words only in `before` marked <del>, words only in `after` <ins>."""
    if before.startswith(REDACTED) or after.startswith(REDACTED):
        return (
            f"<span class='redacted'>{escape(before)}</span>",
            f"<span class='redacted'>{escape(after)}</span>",
        )
    a, b = re.split(r"(\s+)", before), re.split(r"(\s+)", after)
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(old)
            right.append(new)
            continue
        if old:
            left.append(f"<del>{old}</del>")
        if new:
            right.append(f"<ins>{new}</ins>")
    return "".join(left), "".join(right)


def answer_pair(row: dict[str, Any]) -> str:
    before, after = word_diff(str(row.get("original_generation", "")), str(row.get("generation", "")))
    prompt = str(row.get("prompt", ""))
    cls = " redacted" if prompt.startswith(REDACTED) else ""
    return (
        f"<div class='pairbox'><div class='prompt{cls}'>{escape(prompt)}</div>"
        f"<div class='ba'><div><span class='desc'>before</span> {before}</div>"
        f"<div><span class='desc'>after</span> {after}</div></div></div>"
    )


def answers_section(examples: dict[str, list[dict[str, Any]]], per_side: int = 2, more: int = 4) -> str:
    """The first `per_side` forget and normal prompts with the original's and the unlearned
    model's answers, words that changed marked (the first rows, not picked to flatter); `more`
    further pairs a side wait folded below them."""
    columns = []
    for role, title in ANSWER_SIDES:
        rows = [r for r in examples.get(role, []) if "generation" in r and "original_generation" in r]
        if rows:
            shown = "".join(answer_pair(r) for r in rows[:per_side])
            rest = rows[per_side : per_side + more]
            if rest:
                pairs = "".join(answer_pair(r) for r in rest)
                shown += f"<details><summary>{len(rest)} more</summary>{pairs}</details>"
            count = min(per_side + more, len(rows))
            columns.append(f"<div><h3>{escape(title)} ({count} of {len(rows)})</h3>{shown}</div>")
    if not columns:
        return ""
    head = '<section id="answers"><h2>Answers before → after</h2>'
    return f"{head}<div class='cols'>{''.join(columns)}</div></section>"


def curves_section(history: list[dict[str, Any]], manifest: Manifest) -> str:
    """Loss terms and validation signals over steps; the stop and the kept step marked."""
    if not history:
        return ""
    selection = manifest.selection or {}
    baseline = {k: v for k, v in (selection.get("baseline") or {}).items() if k.startswith("val_")}
    rows = ([{"step": 0, **baseline}] if baseline else []) + history  # step 0: the original
    terms = sorted(
        {k for r in history for k, v in r.items() if k not in NOT_TERMS and not k.startswith("val_")}
    )
    terms = ["loss"] + [t for t in terms if t != "loss"] if "loss" in terms else terms
    known = {k for _, keys in PANELS for k in keys}
    others = sorted({k for r in history for k in r if k.startswith("val_")} - known)
    panels = [("loss terms", terms), *PANELS, *((k, [k]) for k in others)]
    stop = manifest.steps if manifest.steps is not None else history[-1].get("step")
    kept = selection.get("step")
    png = training_curves(rows, panels, stop, kept)
    reason = manifest.stop_reason if manifest.stop_reason is not None else "unknown"
    notes = [f"stopped at step {stop}: {reason}"]
    if kept is not None:
        notes.append(f"kept step {kept}: {selection.get('reason', '')}")
    text = "; ".join(escape(str(n)) for n in notes)
    return f'<div id="curves"><h3>Training</h3>{img(png, "training curves")}<p class="desc">{text}</p></div>'


def tradeoff_section(result: dict[str, Any], thresholds: VerdictConfig | None = None) -> str:
    """This run against the original (and the retain-only model): forgetting vs keeping."""
    t = thresholds or thresholds_of(result)
    by = {r.key: r for r in verdict_rows(result, t)}
    forgot, kept = by.get("forgotten"), by.get("kept")
    if forgot is None or kept is None:
        return ""
    points = [
        (LABELS["original"], forgot.before, kept.before),
        (LABELS["model"], forgot.after, kept.after),
        (LABELS["retain_model"], forgot.retrain, kept.retrain),
    ]
    points = [p for p in points if p[1] is not None and p[2] is not None]
    target = (t.forget_judge_rate_max if forgot.passed is not None else None, t.retain_rougeL_min)
    png = tradeoff_scatter(points, f"{forgot.metric} (lower = more forgotten)", kept.metric, target)
    return f'<div id="tradeoff"><h3>Trade-off</h3>{img(png, "forget vs utility")}</div>'
