"""`unlearn audit RUN_DIR`: attacks and recovery analysis on a finished run, written to
RUN_DIR/audit.json and a self-contained RUN_DIR/audit.html."""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any

from lm_unlearn.analysis.attacks import ATTACKS
from lm_unlearn.analysis.plots import krs_figure, lens_figure
from lm_unlearn.analysis.recovery import analyze_recovery
from lm_unlearn.config import DatasetConfig
from lm_unlearn.data import PromptFormat, Record, read_records
from lm_unlearn.data.demo import demo_dataset
from lm_unlearn.errors import UnlearnError
from lm_unlearn.files import atomic_write_json, atomic_write_text
from lm_unlearn.manifest import now, source_revision, verify_outputs
from lm_unlearn.rundir import Manifest, RunDir, read_manifest

log = logging.getLogger(__name__)

# Keys whose values repeat or generate forget text; --redact replaces them.
FORGET_TEXT_KEYS = ("answers", "answers_after", "example_prompt")


def read_run(run_dir: Path) -> tuple[Manifest, DatasetConfig]:
    """The run's manifest and its forget data set, with errors that say what to do."""
    if not RunDir(run_dir).manifest.is_file():
        raise UnlearnError(f"{run_dir} is not a run directory (no manifest.json)")
    manifest = read_manifest(run_dir)
    if manifest.status != "finished":
        raise UnlearnError(
            f"{run_dir}: the run's status is {manifest.status!r}, not 'finished'; "
            f"finish it first (unlearn run --resume {run_dir})"
        )
    if not (RunDir(run_dir).model / "config.json").is_file():
        raise UnlearnError(
            f"{run_dir}/model is missing; the audit needs the full unlearned model "
            "(LoRA runs save it when save.merge is true)"
        )
    verify_outputs(run_dir, manifest)
    forget = (manifest.config or {}).get("data", {}).get("forget")
    return manifest, DatasetConfig(**forget) if forget else demo_dataset("forget")


def load_pair(run_dir: Path, manifest: Manifest):
    """The original model, the unlearned one (`LoadedModel`) and the run's prompt format."""
    from lm_unlearn.models import load_model

    model_cfg = (manifest.config or {}).get("model", {})
    spec = manifest.source_model["spec"]
    log.info("loading the original %s and the unlearned %s", spec, RunDir(run_dir).model)
    original = load_model(spec, revision=source_revision(manifest)).model
    unlearned = load_model(str(RunDir(run_dir).model))
    fmt = PromptFormat.choose(
        unlearned.tokenizer, model_cfg.get("template", "auto"), model_cfg.get("system_prompt")
    )
    return original, unlearned, fmt


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if k in FORGET_TEXT_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def run_audit(
    run_dir: str | Path,
    attacks: list[str] | None = None,
    recovery: bool = True,
    window: int = 5,
    answer_only: bool = False,
    limit: int | None = None,
    max_new_tokens: int = 32,
    relearn_steps: int = 10,
    redact_text: bool = False,
) -> dict:
    run_dir = Path(run_dir)
    manifest, forget_cfg = read_run(run_dir)
    attacks = list(ATTACKS) if attacks is None else attacks
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise UnlearnError(f"unknown attack(s) {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    records = read_records(forget_cfg, "forget")[:limit]
    original, unlearned, fmt = load_pair(run_dir, manifest)
    result: dict[str, Any] = {
        "created": now(),
        "run": str(run_dir),
        "original_model": manifest.source_model["spec"],
        "forget_data": forget_cfg.path,
        "questions": len(records),
        "redacted": redact_text,
        "complete": False,
    }

    def save_partial() -> None:
        # After every stage, so an interrupted audit keeps what it finished.
        atomic_write_json(RunDir(run_dir).audit_json, redact(result) if redact_text else result)

    if recovery:
        log.info("recovery analysis (window %d)", window)
        result["recovery"] = analyze_recovery(
            original, unlearned.model, records, fmt, window, answer_only=answer_only
        )
        save_partial()
    result["attacks"] = {}
    for name in attacks:
        log.info("attack: %s", name)
        options: dict[str, Any] = {} if name == "logit_lens" else {"max_new_tokens": max_new_tokens}
        if name == "relearn":
            options["steps"] = relearn_steps
        result["attacks"][name] = ATTACKS[name](unlearned.model, fmt, records, original=original, **options)
        save_partial()
    result["verdicts"] = [a["verdict"] for a in result["attacks"].values() if "verdict" in a]
    result["complete"] = True
    if redact_text:
        result = redact(result)
    atomic_write_json(RunDir(run_dir).audit_json, result)
    atomic_write_text(RunDir(run_dir).audit_html, render_html(result, records if not redact_text else None))
    from lm_unlearn.report.html import refresh_report

    if refresh_report(run_dir):  # the run's report.html gets the audit section
        log.info("added the audit to %s", RunDir(run_dir).report)
    return result


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _row(cells: list[Any], tag: str = "td") -> str:
    def fmt(c: Any) -> str:
        return f"{c:.3f}" if isinstance(c, float) else str(c)

    return "<tr>" + "".join(f"<{tag}>{html.escape(fmt(c))}</{tag}>" for c in cells) + "</tr>"


def _measures_table(attack: dict) -> str:
    rows = [_row(["", "forget NLL", "answer recall", "ROUGE-L recall"], "th")]

    def cells(v: dict) -> list:
        return [v["nll"], v["recall"], v.get("rougeL_recall", "")]

    for key in ("before", "after", "original"):
        if attack.get(key):
            rows.append(_row([key, *cells(attack[key])]))
    for key, v in attack.get("variants", {}).items():
        rows.append(_row([f"  {key}", *cells(v)]))
    return "<table>" + "".join(rows) + "</table>"


def render_html(result: dict, records: list[Record] | None) -> str:
    """The audit page; every piece of text is escaped, every image inline."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Unlearning audit</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "li{margin:.3em 0}</style></head><body>",
        "<h1>Is it really gone? Unlearning audit</h1>",
        f"<p>Run {e(result['run'])}; original model {e(result['original_model'])}; "
        f"forget data {e(result['forget_data'])} ({result['questions']} records); "
        f"{e(result['created'])}.</p>",
        "<h2>Verdicts</h2><ul>" + "".join(f"<li>{e(v)}</li>" for v in result["verdicts"]) + "</ul>",
    ]
    rec = result.get("recovery")
    if rec:
        parts.append("<h2>Knowledge recovery (Hong et al., 2024)</h2>")
        parts.append(
            f"<p>{e(rec['method'])}; {rec['answer_tokens']} answer tokens; "
            f"patching {'answer positions only' if rec['answer_only'] else 'all positions'}.</p>"
        )
        parts.append(_img(krs_figure(rec), "KRS by layer window"))
        rows = [_row(["intervention", "best window", "KRS"], "th")]
        for name, values in rec["krs"].items():
            i = max(range(len(values)), key=lambda j: values[j] if values[j] == values[j] else -1e9)
            rows.append(_row([name, f"layers {rec['windows'][i][0]}-{rec['windows'][i][1]}", values[i]]))
        parts.append("<table>" + "".join(rows) + "</table>")
    parts.append("<h2>Attacks</h2>")
    for name, attack in result["attacks"].items():
        parts.append(f"<h3>{e(name)}</h3>")
        if "skipped" in attack:
            parts.append(f"<p>Skipped: {e(attack['skipped'])}</p>")
            continue
        parts.append(f"<p>{e(attack['verdict'])}</p>")
        if name == "logit_lens":
            parts.append(_img(lens_figure(attack), "logit lens by layer"))
        else:
            parts.append(_measures_table(attack))
        answers = attack.get("answers_after")
        if "best_variant" in attack:
            answers = attack["variants"][attack["best_variant"]].get("answers")
        if records is not None and isinstance(answers, list):
            # relearn measures the held-back tail; prompt attacks only the question records
            shown = records[-len(answers) :] if name == "relearn" else [r for r in records if not r.is_text]
            items = "".join(
                f"<li><b>{e(r.prompt)}</b><br>reference: {e(r.response)}<br>after attack: {e(a)}</li>"
                for r, a in zip(shown, answers)
            )
            which = f" ({attack['best_variant']})" if "best_variant" in attack else ""
            parts.append(
                f"<details><summary>answers after the attack{e(which)}</summary><ul>{items}</ul></details>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
