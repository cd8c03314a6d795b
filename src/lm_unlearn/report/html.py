"""eval.json -> one self-contained report.html (inline PNGs, no scripts, no external files).

The page answers "did it work?" first: the verdict panel, before/after answers, training
curves and the trade-off; the detailed tables follow, folded away. Every string from data or
models passes through html.escape. With redaction on, forget-side text (prompts, references,
generations of the forget, held-out, paraphrased and extraction sets) is replaced by a
placeholder before anything is rendered.
"""

from __future__ import annotations

import copy
import json
from html import escape
from pathlib import Path
from typing import Any

from lm_unlearn.evaluation.catalog import GROUP_TITLES, group_of
from lm_unlearn.evaluation.config import VerdictConfig
from lm_unlearn.files import atomic_write_json, atomic_write_text
from lm_unlearn.report.headline import answers_section, curves_section, tradeoff_section, verdict_panel
from lm_unlearn.report.plots import LABELS
from lm_unlearn.report.tables import (
    REDACTED,
    TEXT_FIELDS,
    audit_section,
    collapsible,
    definitions_section,
    examples_table,
    kv_table,
    metric_section,
)
from lm_unlearn.rundir import Manifest, RunDir, read_manifest

FORGET_SIDE = ("forget", "heldout", "paraphrased", "extraction")

STYLE = """
body{font-family:system-ui,sans-serif;margin:1em auto;max-width:1200px;color:#222;line-height:1.35;
padding:0 1em}
h1{font-size:1.4em;margin:0.2em 0} h2{font-size:1.15em;margin:0.6em 0 0.3em} h3{font-size:1em;margin:0.4em 0}
table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{max-width:340px;white-space:pre-wrap;word-break:break-word}
.desc{color:#666;font-size:0.85em} img{max-width:100%} .redacted{color:#a00;font-style:italic}
.overall{font-size:1.25em;font-weight:bold;margin:0.3em 0;padding:0.3em 0.6em;border-radius:4px}
.overall.pass{background:#e6f4e6} .overall.fail{background:#fbe9e9} .overall.info{background:#f3f3f3}
ul.verdict{list-style:none;padding:0;margin:0.3em 0} ul.verdict li{padding:2px 0}
.mark{display:inline-block;width:1.2em;font-weight:bold} .pass .mark{color:#1a7f1a} .fail .mark{color:#b00}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.pairbox{border:1px solid #ddd;padding:4px 8px;margin:4px 0}
/* long answers: three lines each here (the whole text is in the examples tables below) */
.ba>div{display:-webkit-box;-webkit-line-clamp:3;line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
.prompt{font-weight:600} .ba div{white-space:pre-wrap;word-break:break-word;font-size:0.9em}
del{background:#fbdada;text-decoration:line-through} ins{background:#d6f5d6;text-decoration:none}
summary h2{display:inline} details{margin:0.3em 0}
.pair{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}
"""


def placeholder(text: str) -> str:
    return f"[redacted: {len(text)} chars]"


def redact_result(result: dict[str, Any]) -> dict[str, Any]:
    """A copy of an eval result with forget-side example text replaced by placeholders
    (text already redacted stays as it is, so redacting twice keeps the original lengths)."""
    out = copy.deepcopy(result)
    for role in FORGET_SIDE:
        for row in out.get("examples", {}).get(role, []):
            for key in TEXT_FIELDS:
                if isinstance(row.get(key), str) and not row[key].startswith(REDACTED):
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


def page(title: str, body: list[str]) -> str:
    head = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
    return "\n".join(
        [head, f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>", *body, "</body></html>"]
    )


def setup_table(result: dict[str, Any]) -> str:
    info = result.get("info", {})
    models = {f"{LABELS.get(k, k)}": v for k, v in info.get("models", {}).items() if v}
    return kv_table(
        {
            **models,
            "judge": info.get("judge"),
            "precision": info.get("precision"),
            "metric groups": ", ".join(info.get("groups", [])),
            **{f"{k} examples": v for k, v in info.get("sets", {}).items()},
            "redacted": bool(info.get("redacted")),
        }
    )


def detail_sections(result: dict[str, Any], audit: dict[str, Any] | None) -> list[str]:
    """Everything below the first screen, each group folded away."""
    info, metrics = result.get("info", {}), result.get("metrics", {})
    parts = [collapsible("setup", "Setup", setup_table(result))]
    groups = list(GROUP_TITLES) + sorted(
        {group_of(n) for m in metrics.values() for n in m} - set(GROUP_TITLES)
    )
    parts += [metric_section(g, GROUP_TITLES.get(g, g), metrics) for g in groups]
    cost = {f"eval {k}": v for k, v in info.get("eval_cost", {}).items()} | result.get("run_cost", {})
    parts.append(collapsible("cost", "Cost", kv_table(cost)))
    if audit:
        parts.append(audit_section(audit))
    limit = int(info.get("config", {}).get("max_examples", 50))
    examples = result.get("examples", {})
    tables = "".join(examples_table(role, rows, limit) for role, rows in examples.items())
    parts.append(collapsible("examples", "Examples", tables, "every prompt, reference and answer"))
    parts.append(definitions_section(info.get("definitions", {})))
    return [p for p in parts if p]


def render_report(
    result: dict[str, Any],
    title: str = "lm-unlearn evaluation",
    redact: bool = False,
    audit: dict[str, Any] | None = None,
    run: tuple[list[dict[str, Any]], Manifest] | None = None,
    thresholds: VerdictConfig | None = None,
) -> str:
    """The whole report as one HTML string. `audit`: audit.json, for its section; `run`: the run's
    (metrics.jsonl rows, manifest.json) for the training curves; `thresholds`: the verdict's,
    else those recorded in eval.json."""
    if redact:
        result = redact_result(result)
    history, manifest = run or ([], Manifest())
    figures = curves_section(history, manifest) + tradeoff_section(result, thresholds)
    first = [
        verdict_panel(result, thresholds),
        answers_section(result.get("examples", {})),
        f'<section id="figures"><div class="cols">{figures}</div></section>' if figures else "",
    ]
    return page(title, [p for p in first if p] + detail_sections(result, audit))


def run_title(run_dir) -> str:
    """The title of a run directory's report.html."""
    return f"lm-unlearn evaluation: {Path(run_dir).name}"


def read_audit(run_dir) -> dict[str, Any] | None:
    """RUN_DIR/audit.json when `unlearn audit` has written one."""
    path = RunDir(run_dir).audit_json
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_run(run_dir) -> tuple[list[dict[str, Any]], Manifest] | None:
    """RUN_DIR's metrics.jsonl rows and manifest.json, or None when it is not a run directory.
    A torn last line (a run killed mid-write) is skipped."""
    run_dir = Path(run_dir)
    history_path, manifest_path = RunDir(run_dir).metrics, RunDir(run_dir).manifest
    if not history_path.is_file() and not manifest_path.is_file():
        return None
    history = []
    if history_path.is_file():
        for line in history_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                history.append(row)
    return history, read_manifest(run_dir, missing_ok=True)


def run_files_for(result: dict[str, Any], out_dir: Path):
    """The training history beside the report, else in the run the result says it evaluated."""
    found = read_run(out_dir)
    if found is None and result.get("info", {}).get("run_dir"):
        found = read_run(result["info"]["run_dir"])
    return found


def write_outputs(result: dict[str, Any], out_dir, title: str, redact: bool = False):
    """Write out_dir/eval.json and out_dir/report.html atomically; with `redact`, both hold
    placeholders instead of forget-side text. Returns (json path, html path)."""
    out_dir = Path(out_dir)
    if redact:
        result = redact_result(result)
    paths = RunDir(out_dir)  # an evaluation's output directory has the run directory's names
    atomic_write_json(paths.eval, result)
    page_html = render_report(result, title, audit=read_audit(out_dir), run=run_files_for(result, out_dir))
    atomic_write_text(paths.report, page_html)
    return paths.eval, paths.report


def refresh_report(
    run_dir, redact: bool = False, thresholds: VerdictConfig | None = None, title: str | None = None
) -> bool:
    """Re-render RUN_DIR/report.html from its eval.json, metrics.jsonl, manifest.json and
    audit.json, evaluating nothing; False without eval.json."""
    run_dir = Path(run_dir)
    if not RunDir(run_dir).eval.is_file():
        return False
    result = json.loads(RunDir(run_dir).eval.read_text(encoding="utf-8"))
    page_html = render_report(
        result,
        title or run_title(run_dir),
        redact=redact,
        audit=read_audit(run_dir),
        run=run_files_for(result, run_dir),
        thresholds=thresholds,
    )
    atomic_write_text(RunDir(run_dir).report, page_html)
    return True
