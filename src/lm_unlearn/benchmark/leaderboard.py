"""The benchmark leaderboard: rows from eval.json files, Markdown + CSV, a trade-off plot per scenario.

leaderboard.md is verdict first, as the report is: per scenario, the methods ranked best
trade-off first with the report's verdict checks, then the table of every metric.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

from lm_unlearn.files import atomic_write_bytes, atomic_write_text

# (metric in eval.json's metrics.model, column header, what it means)
METRICS = (
    ("forget_quality.ks_pvalue", "forget quality", "KS-test p-value of truth ratios vs the retrain model; ↑"),
    ("forget_quality.truth_ratio", "truth ratio", "TOFU truth ratio on forget questions"),
    ("forget.rougeL", "forget ROUGE-L", "recall of forget answers in generations; ↓"),
    ("forget.nll", "forget NLL", "mean token NLL of forget answers; ↑ = forgotten"),
    ("paraphrased.rougeL", "paraphrased ROUGE-L", "forget questions reworded; ↓"),
    ("heldout.rougeL", "heldout ROUGE-L", "people never taught (the floor)"),
    ("retain.rougeL", "retain ROUGE-L", "answers about retained people; ↑"),
    ("retain.rougeL_vs_original", "retain vs target", "ROUGE-L of retain generations vs the target's; ↑"),
    ("retain.ppl", "retain PPL", "perplexity of retain answers; ↓"),
    ("mia.privleak", "PrivLeak", "MUSE's PrivLeak (Min-40% AUC vs the retrain model's, x100); 0 is ideal"),
    ("cost.kept_step", "kept step", "the step whose weights were kept (the last one without validation)"),
    ("cost.train_wall_s", "train s", "unlearning wall time"),
    (
        "cost.train_peak_gib",
        "train GiB",
        "peak memory of the unlearning run (GPU allocated, else RSS)",
    ),
    ("cost.eval_wall_s", "eval s", "evaluation wall time"),
)
# `--audit` columns (lm_unlearn.benchmark.audit), shown only when a row has them.
AUDIT_METRICS = (
    (
        "audit.relearn.gap_closed",
        "relearn gap closed",
        "share of the forget-NLL gap between the run and the target that relearning on part of the "
        "forget set closes, (NLL_run - NLL_attacked) / (NLL_run - NLL_target) on the rest; "
        "0 = nothing comes back, 1 = back to the target; ↓",
    ),
    (
        "audit.quantize.gap_closed",
        "quantize gap closed",
        "the same after quantising the weights (4-bit by default, simulated on CPU); ↓",
    ),
)
# What the verdict checks read (report/verdict.py), kept per row beside the columns above.
VERDICT_METRICS = (
    "forget.judge_rate",
    "heldout.judge_rate",
    "forget.rougeL",
    "forget_quality.ks_pvalue",
    "paraphrased.judge_rate",
    "retain.rougeL_vs_original",
    "unrelated.bleu_vs_original",
    "mia.privleak",
    "mia.min_k.auc",
)
KEYS = ("scenario", "method", "kind", "seed")
REFERENCES = ("retrain", "target")  # shown first in each scenario, in this order


def row_from_eval(
    scenario: str,
    method: str,
    kind: str,
    seed: int | str,
    eval_json: Path,
    audit: dict[str, dict] | None = None,
) -> dict[str, Any]:
    """One leaderboard row: the evaluated model's metrics, train and evaluation cost, and the
    `audit` attacks' gap_closed (`benchmark.audit.audit_run`) with their notes."""
    result = json.loads(Path(eval_json).read_text(encoding="utf-8"))
    metrics = dict(result.get("metrics", {}).get("model", {}))
    run_cost = result.get("run_cost", {})
    metrics["cost.kept_step"] = run_cost.get("kept_step", run_cost.get("steps"))
    metrics["cost.train_wall_s"] = run_cost.get("train_wall_s")
    peak = run_cost.get("train_peak_gpu_memory_bytes") or run_cost.get("train_peak_rss_bytes")
    metrics["cost.train_peak_gib"] = peak / 2**30 if isinstance(peak, int | float) else None
    metrics["cost.eval_wall_s"] = result.get("info", {}).get("eval_cost", {}).get("wall_s")
    row: dict[str, Any] = {"scenario": scenario, "method": method, "kind": kind, "seed": seed}
    row.update({name: _number(metrics.get(name)) for name, _, _ in METRICS})
    row["verdict"] = {name: _number(metrics.get(name)) for name in VERDICT_METRICS}
    row["thresholds"] = result.get("info", {}).get("config", {}).get("verdict") or {}
    for name, entry in (audit or {}).items():
        row[f"audit.{name}.gap_closed"] = _number(entry.get("gap_closed"))
        if entry.get("note"):
            row.setdefault("notes", []).append(f"{name}: {entry['note']}")
    return row


def columns(rows: list[dict[str, Any]]) -> tuple:
    """METRICS, then the audit columns some row has."""
    return METRICS + tuple(c for c in AUDIT_METRICS if any(c[0] in r for r in rows))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (scenario, method); `<metric>.std` holds the sample std (2+ seeds)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["scenario"], row["method"], row["kind"]), []).append(row)
    out = []
    for (scenario, method, kind), members in groups.items():
        agg: dict[str, Any] = {"scenario": scenario, "method": method, "kind": kind, "seeds": len(members)}
        for name, _, _ in columns(members):
            values = [m[name] for m in members if m.get(name) is not None]
            agg[name] = statistics.fmean(values) if values else None
            agg[name + ".std"] = statistics.stdev(values) if len(values) > 1 else None
        means = {}
        for name in VERDICT_METRICS:
            values = [m["verdict"][name] for m in members if m.get("verdict", {}).get(name) is not None]
            means[name] = statistics.fmean(values) if values else None
        agg["verdict"], agg["thresholds"] = means, members[0].get("thresholds", {})
        agg["notes"] = [f"seed {m['seed']}, {note}" for m in members for note in m.get("notes", [])]
        out.append(agg)
    return sorted(out, key=_order)


def _order(row: dict[str, Any]) -> tuple:
    """Per scenario: retrain, target, then methods by forget quality (best first), then name."""
    ref = REFERENCES.index(row["method"]) if row["kind"] == "reference" else len(REFERENCES)
    fq = row.get("forget_quality.ks_pvalue")
    return (row["scenario"], ref, -(fq if fq is not None else -1.0), row["method"])


def _cell(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return text + (f" ± {std:.2g}" if std is not None else "")


def verdict_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Per scenario, the methods best trade-off first with the report's verdict checks (mean
    over seeds); the reference models follow, unranked."""
    from lm_unlearn.report.comparison import COLUMNS
    from lm_unlearn.report.verdict import overall, show, tradeoff_key, verdict_rows

    head = ["#", "method", "verdict"] + [title for _, title in COLUMNS]
    lines = ["## Verdict, best trade-off first", ""]
    lines += [
        "The checks of each run's report (thresholds from the eval config's `verdict:` block), on the "
        "mean over seeds: ✓ met, ✗ not met, · shown but not judged.",
        "",
    ]
    for scenario in sorted({r["scenario"] for r in rows}):
        judged = []
        for row in (r for r in rows if r["scenario"] == scenario):
            result = {
                "metrics": {"model": row.get("verdict", {})},
                "info": {"config": {"verdict": row.get("thresholds")}},
            }
            checks = verdict_rows(result)
            fq = row.get("forget_quality.ks_pvalue")
            judged.append((row["kind"] == "reference", tradeoff_key(checks), -(fq or 0.0), row, checks))
        judged.sort(key=lambda item: item[:3])
        lines += [f"### {scenario}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for rank, (reference, _, _, row, checks) in enumerate(judged, 1):
            by = {c.key: c for c in checks}
            verdict = overall(checks)
            cells = [
                f"{by[k].mark} {show(by[k].metric, by[k].after)}" if k in by else "-" for k, _ in COLUMNS
            ]
            method = f"*{row['method']}* (reference)" if reference else row["method"]
            mark = {True: "✓", False: "✗", None: "?"}[verdict.passed]
            lines.append(
                "| "
                + " | ".join(["-" if reference else str(rank), method, f"{mark} {verdict.text}", *cells])
                + " |"
            )
        lines.append("")
    return lines


def markdown(rows: list[dict[str, Any]], title: str, notes: list[str] | None = None) -> str:
    """The aggregated rows as Markdown: the verdicts, best trade-off first, then a table of every
    column with a legend."""
    shown = columns(rows)
    head = ["scenario", "method", "seeds"] + [header for _, header, _ in shown]
    lines = [f"# {title}", ""] + [f"{n}" for n in notes or []] + ([""] if notes else [])
    lines += verdict_markdown(rows) + ["## Details", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        method = f"*{row['method']}* (reference)" if row["kind"] == "reference" else row["method"]
        cells = [row["scenario"], method, str(row["seeds"])]
        cells += [_cell(row.get(name), row.get(name + ".std")) for name, _, _ in shown]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Columns (mean over seeds, ± sample standard deviation when there are several):", ""]
    lines += [f"- **{header}** (`{name}`): {meaning}" for name, header, meaning in shown]
    notes = [f"- {r['scenario']} / {r['method']}, {note}" for r in rows for note in r.get("notes", [])]
    lines += ["", "Why a value is missing:", "", *notes] if notes else []
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Every (scenario, method, seed) row, one metric per column under its eval.json name."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(KEYS) + [name for name, _, _ in columns(rows)])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in writer.fieldnames})
    atomic_write_text(path, buffer.getvalue())


def tradeoff_png(rows: list[dict[str, Any]], scenario: str) -> bytes | None:
    """Forget quality (x) vs retain quality (y) for one scenario's aggregated rows, as PNG bytes."""
    from lm_unlearn.report.plots import tradeoff_scatter

    mine = [r for r in rows if r["scenario"] == scenario]
    x_name = "forget_quality.ks_pvalue"
    for y_name in ("retain.rougeL", "retain.ppl"):
        points = [(r["method"], r[x_name], r[y_name]) for r in mine]
        if sum(1 for _, x, y in points if x is not None and y is not None) >= 2:
            png = tradeoff_scatter(points, f"{x_name} (higher = closer to retrain)", y_name)
            return base64.b64decode(png) if png else None
    return None


def write_leaderboard(seed_rows: list[dict[str, Any]], out_dir: Path, title: str, notes=None) -> dict:
    """Write leaderboard.md, leaderboard.csv and tradeoff-<scenario>.png; return their paths."""
    out_dir = Path(out_dir)
    rows = aggregate(seed_rows)
    paths: dict[str, Path] = {"markdown": out_dir / "leaderboard.md", "csv": out_dir / "leaderboard.csv"}
    atomic_write_text(paths["markdown"], markdown(rows, title, notes))
    write_csv(seed_rows, paths["csv"])
    for scenario in sorted({r["scenario"] for r in rows}):
        png = tradeoff_png(rows, scenario)
        if png is not None:
            path = out_dir / f"tradeoff-{scenario}.png"
            atomic_write_bytes(path, png)
            paths[f"plot:{scenario}"] = path
    return paths


def write_comparison(evals: dict[str, Path], path: Path, title: str) -> Path:
    """One scenario's runs on one HTML page (`unlearn compare`'s): verdicts best trade-off first,
    the same prompts answered by the original and by each run, the trade-off plot, every metric."""
    from lm_unlearn.report.comparison import render_comparison

    results = {label: json.loads(p.read_text(encoding="utf-8")) for label, p in evals.items()}
    atomic_write_text(path, render_comparison(results, title=title))
    return path
