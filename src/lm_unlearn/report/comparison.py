"""Several evaluated runs on one page, verdict first: runs ranked best trade-off first with
their verdicts, the same prompts answered by the original and by each run, then the
forget-vs-utility plot, then every metric (folded away)."""

from __future__ import annotations

from html import escape
from typing import Any

from lm_unlearn.evaluation.catalog import FORGET_AXIS, UTILITY_AXIS, describe
from lm_unlearn.report.headline import ANSWER_SIDES, word_diff
from lm_unlearn.report.html import page, redact_result
from lm_unlearn.report.plots import tradeoff_scatter
from lm_unlearn.report.tables import REDACTED, collapsible, fmt_value, img
from lm_unlearn.report.verdict import (
    Overall,
    VerdictRow,
    overall,
    show,
    thresholds_of,
    tradeoff_key,
    verdict_rows,
)

COLUMNS = (
    ("forgotten", "Forgotten"),
    ("generalises", "Generalises"),
    ("kept", "Model kept"),
    ("unrelated", "Unrelated kept"),
    ("privacy", "Privacy"),
)


def ranked_verdicts(
    results: dict[str, dict[str, Any]],
) -> list[tuple[str, list[VerdictRow], Overall]]:
    """(label, verdict rows, overall) per run, best trade-off first (ties keep the given order)."""
    judged = [(label, verdict_rows(r)) for label, r in results.items()]
    judged.sort(key=lambda item: tradeoff_key(item[1]))
    return [(label, rows, overall(rows)) for label, rows in judged]


def axis_pair(results: dict[str, dict[str, Any]]) -> tuple[str | None, str | None]:
    """The forget and utility metrics that every compared run has."""

    def common(candidates):
        for name in candidates:
            if all(r.get("metrics", {}).get("model", {}).get(name) is not None for r in results.values()):
                return name
        return None

    return common(FORGET_AXIS), common(UTILITY_AXIS)


def comparison_rows(results: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Metric names and, per run, the evaluated model's values (the table `compare` prints)."""
    names = sorted({n for r in results.values() for n in r.get("metrics", {}).get("model", {})})
    table = [[r.get("metrics", {}).get("model", {}).get(n) for n in names] for r in results.values()]
    return names, table


def _cell(row: VerdictRow | None) -> str:
    if row is None:
        return "<td>&ndash;</td>"
    cls = {True: "pass", False: "fail", None: "info"}[row.passed]
    mark = f'<span class="mark">{row.mark}</span>'
    return f'<td class="{cls}" title="{escape(row.summary)}">{mark}{escape(show(row.metric, row.after))}</td>'


def leaderboard_table(ranked: list[tuple[str, list[VerdictRow], Overall]]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for _, title in COLUMNS)
    body = []
    for rank, (label, rows, verdict) in enumerate(ranked, 1):
        by = {r.key: r for r in rows}
        mark = {True: "✓", False: "✗", None: "?"}[verdict.passed]
        cells = "".join(_cell(by.get(key)) for key, _ in COLUMNS)
        body.append(
            f"<tr><td class='num'>{rank}</td><td><b>{escape(label)}</b></td>"
            f"<td>{mark} {escape(verdict.text)}</td>{cells}</tr>"
        )
    return (
        f"<table class='leaderboard'><tr><th>#</th><th>run</th><th>verdict</th>{head}</tr>"
        f"{''.join(body)}</table>"
    )


def comparison_scatter(results: dict[str, dict[str, Any]]) -> str | None:
    x_name, y_name = axis_pair(results)
    if not (x_name and y_name):
        return None
    points = [
        (label, r["metrics"]["model"][x_name], r["metrics"]["model"][y_name]) for label, r in results.items()
    ]
    first = next(iter(results.values()))
    original = first["metrics"].get("original", {})
    # Similarity of the original to itself is 1 by definition, so it is not stored.
    y_original = 1.0 if y_name.endswith("_vs_original") else original.get(y_name)
    if original.get(x_name) is not None and y_original is not None:
        points.append(("original", original[x_name], y_original))
    t = thresholds_of(first)
    target = (
        t.forget_judge_rate_max if x_name == "forget.judge_rate" else None,
        t.retain_rougeL_min if y_name == "retain.rougeL_vs_original" else None,
    )
    return tradeoff_scatter(points, f"{x_name} (lower = more forgotten)", y_name, target)


def _answered(result: dict[str, Any], role: str) -> list[dict[str, Any]]:
    rows = result.get("examples", {}).get(role, [])
    return [r for r in rows if "generation" in r and "original_generation" in r]


def prompt_answers(results: dict[str, dict[str, Any]], labels: list[str], role: str, i: int) -> str:
    """Prompt i of `role`: the original's answer (as the first run recorded it), then each run's
    that answered the same prompt, words changed from the original's marked."""
    first = _answered(results[labels[0]], role)[i]
    before = str(first["original_generation"])
    original = word_diff(before, before)[0]  # nothing marked; placeholders styled as redacted
    lines = [f"<div><span class='desc'>before</span> {original}</div>"]
    for label in labels:
        rows = _answered(results[label], role)
        if i < len(rows) and rows[i].get("prompt") == first.get("prompt"):
            after = word_diff(before, str(rows[i]["generation"]))[1]
            lines.append(f"<div><span class='desc'>{escape(label)}</span> {after}</div>")
    prompt = str(first.get("prompt", ""))
    cls = " redacted" if prompt.startswith(REDACTED) else ""
    return (
        f"<div class='pairbox'><div class='prompt{cls}'>{escape(prompt)}</div>"
        f"<div class='ba'>{''.join(lines)}</div></div>"
    )


def comparison_answers(
    results: dict[str, dict[str, Any]], labels: list[str], per_side: int = 1, more: int = 3
) -> str:
    """The first `per_side` forget and normal prompts answered before and by every run (best
    first); `more` further prompts a side folded below."""
    columns = []
    for role, title in ANSWER_SIDES:
        count = len(_answered(results[labels[0]], role)) if labels else 0
        if not count:
            continue
        shown = "".join(prompt_answers(results, labels, role, i) for i in range(min(per_side, count)))
        rest = range(per_side, min(per_side + more, count))
        if rest:
            pairs = "".join(prompt_answers(results, labels, role, i) for i in rest)
            shown += f"<details><summary>{len(rest)} more</summary>{pairs}</details>"
        columns.append(f"<div><h3>{escape(title)}</h3>{shown}</div>")
    if not columns:
        return ""
    head = '<section id="answers"><h2>Answers before → after</h2>'
    return f"{head}<div class='cols'>{''.join(columns)}</div></section>"


def render_comparison(
    results: dict[str, dict[str, Any]], title: str = "lm-unlearn comparison", redact: bool = False
) -> str:
    """Runs side by side, verdict first: the ranked verdict table, the same prompts answered by
    each run, the trade-off plot, then every metric of every run (collapsed). Forget-side text is
    replaced by placeholders with `redact`, or when any run's eval.json was redacted."""
    if redact or any(r.get("info", {}).get("redacted") for r in results.values()):
        results = {label: redact_result(r) for label, r in results.items()}
    ranked = ranked_verdicts(results)
    scatter = comparison_scatter(results)
    names, table = comparison_rows(results)
    labels = list(results)
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = "".join(
        f"<tr><td>{escape(n)}<div class='desc'>{escape(describe(n))}</div></td>"
        + "".join(f'<td class="num">{fmt_value(col[i])}</td>' for col in table)
        + "</tr>"
        for i, n in enumerate(names)
    )
    body = [
        f'<section id="verdict"><h2>Best trade-off first</h2>{leaderboard_table(ranked)}'
        "<p class='desc'>Ranked by verdicts met, then the least remembered, then the best kept. "
        "Hover a cell for its sentence; thresholds as recorded in each eval.json.</p></section>",
        comparison_answers(results, [label for label, _, _ in ranked]),
        '<section id="tradeoff"><h2>Trade-off</h2>' + img(scatter, "forget vs utility") + "</section>",
        collapsible(
            "table",
            "Metrics",
            f"<table><tr><th>metric</th>{head}</tr>{rows}</table>",
            f"{len(names)} metrics",
        ),
    ]
    return page(title, [b for b in body if b])
