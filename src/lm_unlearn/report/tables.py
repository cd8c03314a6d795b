"""The report's detail sections: metric tables by group (collapsed, one chart each), setup, cost,
examples, the audit summary and definitions. Every string from data or models is escaped here."""

from __future__ import annotations

import base64
import math
from html import escape
from typing import Any

from lm_unlearn.evaluation.catalog import describe, group_of
from lm_unlearn.report.plots import LABELS, group_chart

TEXT_FIELDS = ("prompt", "reference", "generation", "original_generation")
ROLES = ("original", "model", "retain_model")
REDACTED = "[redacted:"
# Metrics drawn in a group's chart (all appear in its table); the rest would crowd it.
PLOTTED = {
    "judge_rate",
    "rougeL",
    "rougeL_recall",
    "nll",
    "ppl",
    "kl_to_original",
    "rougeL_vs_original",
    "bleu_vs_original",
    "cosine_vs_original",
    "gen_ppl",
    "distinct_2",
    "empty_rate",
    "leak_rate",
    "auc",
    "privleak",
    "ks_pvalue",
    "truth_ratio",
    "model_utility",
    "acc",  # lm-eval tasks' accuracy (utility.lm_eval.TASK.acc)
    "acc_norm",
}


def fmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "&ndash;" if value is None else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return escape(str(value))
        return f"{value:.4g}"
    return escape(str(value))


def img(b64: str | None, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{b64}">' if b64 else ""


def collapsible(section_id: str, title: str, body: str, note: str = "") -> str:
    """A section whose body is folded away (<details>) until the reader opens it."""
    extra = f" <span class='desc'>{escape(note)}</span>" if note else ""
    return (
        f'<section id="{escape(section_id)}"><details><summary><h2>{escape(title)}</h2>{extra}</summary>'
        f"{body}</details></section>"
    )


def kv_table(items: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{fmt_value(v)}</td></tr>" for k, v in items.items())
    return f"<table>{rows}</table>"


def metric_section(group: str, title: str, metrics: dict[str, dict[str, Any]]) -> str:
    """One group's table (every metric, before/after/retain-only) and one compact chart."""
    names = sorted({n for by in metrics.values() for n in by if group_of(n) == group})
    if not names:
        return ""
    roles = [r for r in ROLES if r in metrics]
    head = "".join(f"<th>{escape(LABELS[r])}</th>" for r in roles)
    rows = []
    for name in names:
        cells = "".join(f'<td class="num">{fmt_value(metrics[r].get(name))}</td>' for r in roles)
        rows.append(
            f"<tr><td>{escape(name)}<div class='desc'>{escape(describe(name))}</div></td>{cells}</tr>"
        )
    plotted = [n for n in names if n.rsplit(".", 1)[-1] in PLOTTED]
    chart = group_chart({n: {r: metrics[r].get(n) for r in roles} for n in plotted})
    table = f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"
    body = f"<div class='pair'>{table}{img(chart, title)}</div>"
    return collapsible(group, title, body, f"{len(names)} metrics")


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def examples_table(role: str, rows: list[dict[str, Any]], limit: int) -> str:
    if not rows:
        return ""
    text_cols = [c for c in TEXT_FIELDS if any(c in r for r in rows)]
    num_cols = sorted({k for r in rows for k, v in r.items() if k not in TEXT_FIELDS and is_num(v)})
    head = "".join(f"<th>{escape(c)}</th>" for c in ["#", *text_cols, *num_cols])
    body = []
    for i, row in enumerate(rows[:limit]):
        cells = [f'<td class="num">{i}</td>']
        for c in text_cols:
            value = str(row.get(c, ""))
            cls = "text redacted" if value.startswith(REDACTED) else "text"
            cells.append(f'<td class="{cls}">{escape(value)}</td>')
        cells += [f'<td class="num">{fmt_value(row.get(c))}</td>' for c in num_cols]
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = f"<p class='desc'>{len(rows) - limit} more rows in eval.json</p>" if len(rows) > limit else ""
    return (
        f'<h3 id="examples-{escape(role)}">{escape(role)} ({len(rows)} examples)</h3>'
        f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"
    )


def audit_section(audit: dict[str, Any]) -> str:
    """`unlearn audit`'s verdicts and KRS curves; the details stay in audit.html.

    Holds numbers and verdict lines only (no forget text), so it needs no redaction.
    """
    parts = [
        '<section id="audit"><h2>Audit: is it really gone?</h2>',
        f'<p>From <a href="audit.html">audit.html</a> ({escape(str(audit.get("created", "")))}; '
        f"{escape(str(audit.get('questions', '?')))} forget records"
        f"{'' if audit.get('complete') else '; incomplete: the audit was interrupted'}).</p>",
    ]
    verdicts = audit.get("verdicts") or [
        a["verdict"] for a in audit.get("attacks", {}).values() if isinstance(a, dict) and "verdict" in a
    ]
    parts.append("<ul>" + "".join(f"<li>{escape(str(v))}</li>" for v in verdicts) + "</ul>")
    recovery = audit.get("recovery")
    if recovery:
        from lm_unlearn.analysis.plots import krs_figure

        best = {
            name: max(v for v in values if v == v)
            for name, values in recovery["krs"].items()
            if any(v == v for v in values)
        }  # NaN != NaN: windows without a value are skipped
        rows = "".join(
            f"<tr><td>{escape(name)}</td><td class='num'>{fmt_value(value)}</td></tr>"
            for name, value in best.items()
        )
        png = base64.b64encode(krs_figure(recovery)).decode("ascii")
        parts.append(
            "<h3>Knowledge recovery score by layer window (Hong et al., 2024)</h3>"
            f"{img(png, 'KRS by layer window')}<table><tr><th>intervention</th><th>best KRS</th></tr>"
            f"{rows}</table>"
        )
    parts.append("</section>")
    return "".join(parts)


def definitions_section(definitions: dict[str, Any]) -> str:
    if not definitions:
        return ""
    rows = "".join(
        f"<tr><td>{escape(str(k))}</td><td class='text'>{escape(str(v))}</td></tr>"
        for k, v in definitions.items()
    )
    return collapsible("definitions", "Definitions", f"<table>{rows}</table>")
