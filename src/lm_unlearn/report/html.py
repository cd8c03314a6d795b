"""eval.json -> one self-contained report.html (inline PNGs, no scripts, no external files).

Every string from data or models passes through html.escape. With redaction on, forget-side
text (prompts, references, generations of the forget, held-out, paraphrased and extraction
sets) is replaced by a placeholder before anything is rendered.
"""

from __future__ import annotations

import copy
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from lm_unlearn.evaluation.catalog import FORGET_AXIS, GROUP_TITLES, UTILITY_AXIS, describe, group_of
from lm_unlearn.files import atomic_write_json, atomic_write_text
from lm_unlearn.report.plots import LABELS, metric_bars, tradeoff_scatter

FORGET_SIDE = ("forget", "heldout", "paraphrased", "extraction")
TEXT_FIELDS = ("prompt", "reference", "generation", "original_generation")
ROLES = ("original", "model", "retain_model")
# Metrics drawn as bars (all appear in the tables); the rest would crowd the figures.
PLOTTED = {
    "judge_rate",
    "rougeL",
    "rougeL_recall",
    "nll",
    "ppl",
    "kl_to_original",
    "rougeL_vs_original",
    "cosine_vs_original",
    "gen_ppl",
    "distinct_2",
    "empty_rate",
    "leak_rate",
    "auc",
    "privleak",
    "ks_pvalue",
    "truth_ratio",
}

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{max-width:340px;white-space:pre-wrap;word-break:break-word}
.desc{color:#666;font-size:0.85em} img{max-width:100%} .redacted{color:#a00;font-style:italic}
"""


def placeholder(text: str) -> str:
    return f"[redacted: {len(text)} chars]"


def redact_result(result: dict[str, Any]) -> dict[str, Any]:
    """A copy of an eval result with forget-side example text replaced by placeholders."""
    out = copy.deepcopy(result)
    for role in FORGET_SIDE:
        for row in out.get("examples", {}).get(role, []):
            for key in TEXT_FIELDS:
                if isinstance(row.get(key), str):
                    row[key] = placeholder(row[key])
    info = out.setdefault("info", {})
    if isinstance(info.get("config"), dict):
        info["config"] = redact_eval_config(info["config"])
    info["redacted"] = True
    return out


def redact_eval_config(config: dict[str, Any]) -> dict[str, Any]:
    """The evaluation settings without the text in them that may repeat forget data: the judge's
    patterns (e.g. a forgotten e-mail address), stop strings and the system prompt."""
    config = dict(config)
    judge = config.get("judge")
    if isinstance(judge, dict) and judge.get("patterns"):
        config["judge"] = judge | {"patterns": [placeholder(str(p)) for p in judge["patterns"]]}
    if config.get("stop"):
        config["stop"] = [placeholder(str(s)) for s in config["stop"]]
    if config.get("system_prompt"):
        config["system_prompt"] = placeholder(str(config["system_prompt"]))
    return config


def fmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "&ndash;" if value is None else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return escape(str(value))
        return f"{value:.4g}"
    return escape(str(value))


def _img(b64: str | None, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{b64}">' if b64 else ""


def metric_section(group: str, metrics: dict[str, dict[str, Any]]) -> str:
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
    bars = metric_bars({n: {r: metrics[r].get(n) for r in roles} for n in plotted})
    title = GROUP_TITLES.get(group, group)
    return (
        f'<section id="{escape(group)}"><h2>{escape(title)}</h2>'
        f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>{_img(bars, title)}</section>"
    )


def examples_table(role: str, rows: list[dict[str, Any]], limit: int) -> str:
    if not rows:
        return ""
    text_cols = [c for c in TEXT_FIELDS if any(c in r for r in rows)]
    num_cols = sorted({k for r in rows for k, v in r.items() if k not in TEXT_FIELDS and _is_num(v)})
    head = "".join(f"<th>{escape(c)}</th>" for c in ["#", *text_cols, *num_cols])
    body = []
    for i, row in enumerate(rows[:limit]):
        cells = [f'<td class="num">{i}</td>']
        for c in text_cols:
            value = str(row.get(c, ""))
            cls = "text redacted" if value.startswith("[redacted:") else "text"
            cells.append(f'<td class="{cls}">{escape(value)}</td>')
        cells += [f'<td class="num">{fmt_value(row.get(c))}</td>' for c in num_cols]
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = f"<p class='desc'>{len(rows) - limit} more rows in eval.json</p>" if len(rows) > limit else ""
    return (
        f'<h3 id="examples-{escape(role)}">{escape(role)} ({len(rows)} examples)</h3>'
        f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"
    )


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kv_table(items: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{fmt_value(v)}</td></tr>" for k, v in items.items())
    return f"<table>{rows}</table>"


def audit_section(audit: dict[str, Any]) -> str:
    """`unlearn audit`'s verdicts and KRS curves; the details stay in audit.html.

    Holds numbers and verdict lines only (no forget text), so it needs no redaction.
    """
    import base64

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
            f"{_img(png, 'KRS by layer window')}<table><tr><th>intervention</th><th>best KRS</th></tr>"
            f"{rows}</table>"
        )
    parts.append("</section>")
    return "".join(parts)


def render_report(
    result: dict[str, Any],
    title: str = "lm-unlearn evaluation",
    redact: bool = False,
    audit: dict[str, Any] | None = None,
) -> str:
    """The whole report as one HTML string; with `audit` (audit.json), its section too."""
    if redact:
        result = redact_result(result)
    info = result.get("info", {})
    metrics = result.get("metrics", {})
    limit = int(info.get("config", {}).get("max_examples", 50))
    models = {f"{LABELS.get(k, k)}": v for k, v in info.get("models", {}).items() if v}
    setup = {
        **models,
        "judge": info.get("judge"),
        "precision": info.get("precision"),
        "metric groups": ", ".join(info.get("groups", [])),
        **{f"{k} examples": v for k, v in info.get("sets", {}).items()},
        "redacted": bool(info.get("redacted")),
    }
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>",
        f'<section id="setup"><h2>Setup</h2>{_kv_table(setup)}</section>',
    ]
    groups = list(GROUP_TITLES) + sorted(
        {group_of(n) for m in metrics.values() for n in m} - set(GROUP_TITLES)
    )
    parts += [metric_section(g, metrics) for g in groups]
    cost = {f"eval {k}": v for k, v in info.get("eval_cost", {}).items()} | result.get("run_cost", {})
    parts.append(f'<section id="cost"><h2>Cost</h2>{_kv_table(cost)}</section>')
    if audit:
        parts.append(audit_section(audit))
    examples = result.get("examples", {})
    parts.append('<section id="examples"><h2>Examples</h2>')
    parts += [examples_table(role, rows, limit) for role, rows in examples.items()]
    parts.append("</section>")
    definitions = info.get("definitions", {})
    if definitions:
        defs = "".join(
            f"<tr><td>{escape(str(k))}</td><td class='text'>{escape(str(v))}</td></tr>"
            for k, v in definitions.items()
        )
        parts.append(f'<section id="definitions"><h2>Definitions</h2><table>{defs}</table></section>')
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


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


def render_comparison(results: dict[str, dict[str, Any]], title: str = "lm-unlearn comparison") -> str:
    """Runs side by side: a metric table and the forget-vs-utility trade-off plot."""
    names, table = comparison_rows(results)
    labels = list(results)
    x_name, y_name = axis_pair(results)
    scatter = None
    if x_name and y_name:
        points = [
            (label, r["metrics"]["model"][x_name], r["metrics"]["model"][y_name])
            for label, r in results.items()
        ]
        original = next(iter(results.values()))["metrics"].get("original", {})
        # Similarity of the original to itself is 1 by definition, so it is not stored.
        y_original = 1.0 if y_name.endswith("_vs_original") else original.get(y_name)
        if original.get(x_name) is not None and y_original is not None:
            points.append(("original", original[x_name], y_original))
        scatter = tradeoff_scatter(points, f"{x_name} (lower = more forgotten)", y_name)
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = "".join(
        f"<tr><td>{escape(n)}<div class='desc'>{escape(describe(n))}</div></td>"
        + "".join(f'<td class="num">{fmt_value(col[i])}</td>' for col in table)
        + "</tr>"
        for i, n in enumerate(names)
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<section id="tradeoff"><h2>Trade-off</h2>{_img(scatter, "forget vs utility")}</section>'
        f'<section id="table"><h2>Metrics</h2><table><tr><th>metric</th>{head}</tr>{rows}</table></section>'
        "</body></html>"
    )


def write_outputs(result: dict[str, Any], out_dir, title: str, redact: bool = False):
    """Write out_dir/eval.json and out_dir/report.html atomically; with `redact`, both hold
    placeholders instead of forget-side text. Returns (json path, html path)."""
    out_dir = Path(out_dir)
    if redact:
        result = redact_result(result)
    atomic_write_json(out_dir / "eval.json", result)
    atomic_write_text(out_dir / "report.html", render_report(result, title, audit=read_audit(out_dir)))
    return out_dir / "eval.json", out_dir / "report.html"


def run_title(run_dir) -> str:
    """The title of a run directory's report.html."""
    return f"lm-unlearn evaluation: {Path(run_dir).name}"


def read_audit(run_dir) -> dict[str, Any] | None:
    """RUN_DIR/audit.json when `unlearn audit` has written one."""
    path = Path(run_dir) / "audit.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def refresh_report(run_dir) -> bool:
    """Re-render RUN_DIR/report.html from its eval.json and audit.json; False without eval.json."""
    run_dir = Path(run_dir)
    if not (run_dir / "eval.json").is_file():
        return False
    result = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    page = render_report(result, run_title(run_dir), audit=read_audit(run_dir))
    atomic_write_text(run_dir / "report.html", page)
    return True
