"""`unlearn eval`, `unlearn compare` and `unlearn report`: parse, call lm_unlearn.evaluation and
lm_unlearn.report, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lm_unlearn.cli._common import TrustRemoteCodeOpt, fail, fail_os, setup_logging
from lm_unlearn.errors import UnlearnError
from lm_unlearn.rundir import RunDir

HEADLINE = (
    "forget.judge_rate",
    "forget.rougeL",
    "forget.nll",
    "heldout.rougeL",
    "paraphrased.rougeL",
    "paraphrased.judge_rate",
    "extraction.leak_rate",
    "retain.rougeL_vs_original",
    "retain.cosine_vs_original",
    "retain.kl_to_original",
    "retain.ppl",
    "retain.gen_ppl",
    "retain.distinct_2",
    "unrelated.rougeL_recall",
    "unrelated.bleu_vs_original",
    "mia.min_k.auc",
    "mia.privleak",
    "forget_quality.ks_pvalue",
)


def _table(labels: list[str], names: list[str], columns: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4g}" if isinstance(v, float) or (isinstance(v, int) and abs(v) >= 10**7) else str(v)

    width = max(len(n) for n in names) if names else 6
    col_w = [max(10, len(label)) for label in labels]
    lines = ["metric".ljust(width) + "  " + "  ".join(label.rjust(w) for label, w in zip(labels, col_w))]
    for i, name in enumerate(names):
        lines.append(
            name.ljust(width) + "  " + "  ".join(cell(c[i]).rjust(w) for c, w in zip(columns, col_w))
        )
    return "\n".join(lines)


def verdict_lines(results: dict[str, dict]) -> str:
    """The ranked verdicts `compare` prints first: best trade-off first, one block per run."""
    from lm_unlearn.report.comparison import ranked_verdicts

    lines = []
    for rank, (label, rows, verdict) in enumerate(ranked_verdicts(results), 1):
        mark = {True: "✓", False: "✗", None: "?"}[verdict.passed]
        lines.append(f"{rank}. {label}: {mark} {verdict.text}")
        lines += [f"   {row.mark} {row.summary}" for row in rows]
    return "\n".join(lines)


def eval_command(
    model: Annotated[
        str, typer.Option("--model", help="Run directory, HF directory, hub id or builtin:NAME.")
    ],
    original: Annotated[
        str | None, typer.Option(help="The model before unlearning (default: a run's source model).")
    ] = None,
    retain_model: Annotated[
        str | None, typer.Option("--retain-model", help="A model trained without the forget set.")
    ] = None,
    reference_model: Annotated[
        str | None,
        typer.Option(
            "--reference-model",
            help="A model that never saw the forget set, for the reference-model attack when there "
            "is no --retain-model (never the original).",
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="YAML: forget/heldout/paraphrased/retain/unrelated, judge, ...")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: the run dir).")] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Comma-separated groups, e.g. generation,likelihood,mia.")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    redact: Annotated[bool, typer.Option(help="Hide forget-side text in eval.json and the report.")] = False,
    lm_eval: Annotated[
        str | None,
        typer.Option(
            "--lm-eval",
            help="Comma-separated lm-evaluation-harness tasks, task YAML files or directories, run as "
            "utility (replaces the data config's lm_eval:, limit 100; needs the lmeval extra).",
        ),
    ] = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Evaluate a model: write eval.json and report.html."""
    from lm_unlearn.evaluation.run import evaluate_target
    from lm_unlearn.models import remote_code

    setup_logging()
    overrides = {
        "metrics": [m.strip() for m in metrics.split(",")] if metrics else None,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "redact": redact or None,
        "lm_eval": {"tasks": [t.strip() for t in lm_eval.split(",")]} if lm_eval else None,
    }
    try:
        with remote_code(trust_remote_code):
            report = evaluate_target(model, original, retain_model, reference_model, data, out, overrides)
    except (UnlearnError, ValueError) as exc:
        fail(exc)
    except OSError as exc:
        fail_os(exc)
    typer.echo(f"wrote {RunDir(report.parent).eval} and {report}")


def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run (or eval output) directories with eval.json.")],
    out: Annotated[Path, typer.Option(help="Comparison report to write.")] = Path("comparison.html"),
    all_metrics: Annotated[bool, typer.Option("--all", help="Print every metric, not the headline.")] = False,
    redact: Annotated[bool, typer.Option(help="Hide forget-side text in the comparison report.")] = False,
) -> None:
    """Compare evaluated runs: print their verdicts (best trade-off first) and a metric table;
    write a report with the same layout, the runs' answers and the trade-off plot."""
    from lm_unlearn.files import atomic_write_text
    from lm_unlearn.report.comparison import comparison_rows, render_comparison

    results: dict[str, dict] = {}
    try:
        for run in runs:
            path = RunDir(run).eval
            if not path.is_file():
                raise UnlearnError(f"{run}: no eval.json; run `unlearn eval --model {run}` first")
            try:
                result = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise UnlearnError(f"{path}: not valid JSON ({exc.msg})") from None
            label = run.resolve().name
            while label in results:
                label += "'"
            results[label] = result
            cost = result.get("run_cost", {})
            result.setdefault("metrics", {}).setdefault("model", {}).update(
                {f"cost.{k}": v for k, v in cost.items() if isinstance(v, int | float)}
            )
    except UnlearnError as exc:
        fail(exc)
    typer.echo(verdict_lines(results) + "\n")
    names, columns = comparison_rows(results)
    if not all_metrics:
        keep = [i for i, n in enumerate(names) if n in HEADLINE or n.startswith("cost.")]
        names, columns = [names[i] for i in keep], [[c[i] for i in keep] for c in columns]
    typer.echo(_table(list(results), names, columns))
    atomic_write_text(out, render_comparison(results, redact=redact))
    typer.echo(f"\nwrote {out}")


def report_command(
    run: Annotated[Path, typer.Argument(help="A run (or eval output) directory with eval.json.")],
    data: Annotated[
        Path | None,
        typer.Option(help="Eval config YAML whose `verdict:` thresholds to use (default: eval.json's)."),
    ] = None,
    redact: Annotated[
        bool, typer.Option(help="Hide forget-side text in the report (eval.json is not changed).")
    ] = False,
) -> None:
    """Re-render RUN/report.html from eval.json, metrics.jsonl and manifest.json; evaluates nothing."""
    from lm_unlearn.evaluation.config import load_eval_config
    from lm_unlearn.report import refresh_report

    try:
        thresholds = load_eval_config(data).verdict if data is not None else None
        if not refresh_report(run, redact=redact, thresholds=thresholds):
            raise UnlearnError(f"{run}: no eval.json; run `unlearn eval --model {run}` first")
    except json.JSONDecodeError as exc:
        fail(UnlearnError(f"{RunDir(run).eval} (or a file beside it): not valid JSON ({exc.msg})"))
    except (UnlearnError, ValueError) as exc:
        fail(exc)
    typer.echo(f"wrote {RunDir(run).report}")


def register(app: typer.Typer) -> None:
    """Add the `eval`, `compare` and `report` commands to the `unlearn` app."""
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
    app.command("report")(report_command)
