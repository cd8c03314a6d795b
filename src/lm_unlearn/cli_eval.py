"""`unlearn eval`, `unlearn compare` and `unlearn report`, and `evaluate_run` which `unlearn run`
calls at the end.

Wire into the main app with `register(app)`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from lm_unlearn.cli_options import TrustRemoteCodeOpt
from lm_unlearn.errors import UnlearnError, describe_os_error
from lm_unlearn.manifest import read_manifest, source_revision, verify_outputs

log = logging.getLogger(__name__)

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


def is_run_dir(path: Path) -> bool:
    return (path / "manifest.json").is_file() and (path / "config.yaml").is_file()


def load_run_model(run_dir: Path, original_spec: str, revision: str | None = None):
    """The unlearned model of a run: run_dir/model, else the original with run_dir/adapter merged,
    or for in-context unlearning (icu) the original with the run's prompt wrapper.

    The weights are first checked against the hashes the run's manifest recorded; `revision` is
    the original's hub revision.
    """
    from dataclasses import replace

    from lm_unlearn.methods.icu import load_wrapper
    from lm_unlearn.models import LoadedModel, load_model

    verify_outputs(run_dir, read_manifest(run_dir))
    wrapper = load_wrapper(run_dir)
    if wrapper is not None:
        log.warning("evaluating an in-context unlearning run: %s", wrapper.warning)
        return replace(load_model(original_spec, revision=revision), prompt_prefix=wrapper.prefix)

    if (run_dir / "model" / "config.json").is_file():
        return load_model(str(run_dir / "model"))
    if (run_dir / "adapter" / "adapter_config.json").is_file():
        from peft import PeftModel

        base = load_model(original_spec, revision=revision)
        merged = PeftModel.from_pretrained(base.model, str(run_dir / "adapter")).merge_and_unload()
        return LoadedModel(merged, base.tokenizer, str(run_dir / "adapter"), str(run_dir / "adapter"))
    raise UnlearnError(f"{run_dir} holds neither model/ nor adapter/; has the run finished?")


def run_eval_config(run_dir: Path, data: Path | None = None, **overrides):
    """EvalConfig for a run: its data sets and prompt template, unless `data` gives others."""
    from lm_unlearn.evaluation.config import load_eval_config

    run_cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    model_cfg = run_cfg.get("model", {})
    own = {
        "template": model_cfg.get("template"),
        "system_prompt": model_cfg.get("system_prompt"),
        "redact": run_cfg.get("redact") or None,  # a redacted run stays redacted
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    return load_eval_config(data or run_dir / "config.yaml", **(own | given))


def evaluate_run(
    run_dir: Path,
    original_spec: str | None = None,
    cfg=None,
    retain_model: str | None = None,
    reference_model: str | None = None,
) -> Path:
    """Evaluate run_dir's unlearned model against the original; write eval.json and report.html.

    run_dir: a finished `unlearn run` directory (manifest.json, config.yaml, model/ or adapter/).
    original_spec: the model before unlearning; None reads it from the run's manifest.
    cfg: an EvalConfig; None uses the run's own data sets (the demo sets for the demo).
    retain_model: optionally a model trained without the forget set (PrivLeak, forget quality).
    reference_model: without a retain_model, another model that never saw the forget set (the
    reference-model membership attack; skipped when neither is given).
    Returns the path of report.html. Cost figures come from the run's metrics.jsonl/manifest.
    """
    from lm_unlearn.evaluation import evaluate, load_eval_data
    from lm_unlearn.evaluation.cost import run_cost
    from lm_unlearn.models import load_model
    from lm_unlearn.report import write_outputs
    from lm_unlearn.report.html import run_title

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    own = manifest.get("source_model", {}).get("spec") or manifest["config"]["model"]["name"]
    original_spec = original_spec or own
    revision = source_revision(manifest) if original_spec == own else None
    cfg = cfg or run_eval_config(run_dir)
    data = load_eval_data(cfg, validation_records(run_dir))
    model = load_run_model(run_dir, original_spec, revision)  # checks the run's hashes first
    original = load_model(original_spec, revision=revision)
    result = evaluate(
        model, data, cfg, original=original, retain_model=retain_model, reference_model=reference_model
    )
    n_params = sum(p.numel() for p in original.model.parameters())
    result["run_cost"] = run_cost(run_dir, n_params)
    result["info"]["run_dir"] = str(run_dir)
    _, report = write_outputs(result, run_dir, run_title(run_dir), cfg.redact)
    return report


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


def validation_records(run_dir: Path) -> dict[str, list[str]] | None:
    """Digests of the run's validation splits: they steered its training, so they are never
    evaluation data (the evaluation leaves them out)."""
    held = run_dir / "validation.json"
    return json.loads(held.read_text()) if held.is_file() else None


def _evaluate_command(
    model: str,
    original: str | None,
    retain_model: str | None,
    reference_model: str | None,
    data,
    out,
    overrides: dict,
) -> Path:
    """`unlearn eval`: a run directory (written into it unless `out`) or any model."""
    from lm_unlearn.evaluation import evaluate, load_eval_config, load_eval_data
    from lm_unlearn.models import load_model
    from lm_unlearn.report import write_outputs

    path = Path(model)
    if is_run_dir(path) and out is None:
        cfg = run_eval_config(path, data, **overrides)
        return evaluate_run(path, original, cfg, retain_model, reference_model)
    leave_out = None
    if is_run_dir(path):
        cfg = run_eval_config(path, data, **overrides)
        manifest = read_manifest(path)
        revision = source_revision(manifest) if original is None else None
        original = original or manifest.get("source_model", {}).get("spec")
        loaded = load_run_model(path, original, revision)
        original = load_model(original, revision=revision) if original else None
        leave_out = validation_records(path)
    else:
        cfg = load_eval_config(data, **overrides)
        loaded = model
    data = load_eval_data(cfg, leave_out)
    result = evaluate(
        loaded, data, cfg, original=original, retain_model=retain_model, reference_model=reference_model
    )
    target = out or (path if is_run_dir(path) else Path(f"eval-{datetime.now():%Y%m%d-%H%M%S}"))
    _, report = write_outputs(result, target, f"lm-unlearn evaluation: {model}", cfg.redact)
    return report


def verdict_lines(results: dict[str, dict]) -> str:
    """The ranked verdicts `compare` prints first: best trade-off first, one block per run."""
    from lm_unlearn.report.comparison import ranked_verdicts

    lines = []
    for rank, (label, rows, verdict) in enumerate(ranked_verdicts(results), 1):
        mark = {True: "✓", False: "✗", None: "?"}[verdict.passed]
        lines.append(f"{rank}. {label}: {mark} {verdict.text}")
        lines += [f"   {row.mark} {row.summary}" for row in rows]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the `eval`, `compare` and `report` commands to the `unlearn` app."""

    @app.command("eval")
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
        redact: Annotated[
            bool, typer.Option(help="Hide forget-side text in eval.json and the report.")
        ] = False,
        trust_remote_code: TrustRemoteCodeOpt = False,
    ) -> None:
        """Evaluate a model: write eval.json and report.html."""
        from lm_unlearn.cli import _fail, _setup_logging
        from lm_unlearn.models import remote_code

        _setup_logging()
        overrides = {
            "metrics": [m.strip() for m in metrics.split(",")] if metrics else None,
            "max_new_tokens": max_new_tokens,
            "batch_size": batch_size,
            "redact": redact or None,
        }
        try:
            with remote_code(trust_remote_code):
                report = _evaluate_command(
                    model, original, retain_model, reference_model, data, out, overrides
                )
        except (UnlearnError, ValueError) as exc:
            _fail(exc)
        except OSError as exc:
            _fail(UnlearnError(describe_os_error(exc)))
        typer.echo(f"wrote {report.parent / 'eval.json'} and {report}")

    @app.command("compare")
    def compare_command(
        runs: Annotated[list[Path], typer.Argument(help="Run (or eval output) directories with eval.json.")],
        out: Annotated[Path, typer.Option(help="Comparison report to write.")] = Path("comparison.html"),
        all_metrics: Annotated[
            bool, typer.Option("--all", help="Print every metric, not the headline.")
        ] = False,
    ) -> None:
        """Compare evaluated runs: print their verdicts (best trade-off first) and a metric table;
        write a report with the same layout and the trade-off plot."""
        from lm_unlearn.cli import _fail
        from lm_unlearn.files import atomic_write_text
        from lm_unlearn.report.comparison import comparison_rows, render_comparison

        results: dict[str, dict] = {}
        try:
            for run in runs:
                path = run / "eval.json"
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
            _fail(exc)
        typer.echo(verdict_lines(results) + "\n")
        names, columns = comparison_rows(results)
        if not all_metrics:
            keep = [i for i, n in enumerate(names) if n in HEADLINE or n.startswith("cost.")]
            names, columns = [names[i] for i in keep], [[c[i] for i in keep] for c in columns]
        typer.echo(_table(list(results), names, columns))
        atomic_write_text(out, render_comparison(results))
        typer.echo(f"\nwrote {out}")

    @app.command("report")
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
        from lm_unlearn.cli import _fail
        from lm_unlearn.evaluation.config import load_eval_config
        from lm_unlearn.report import refresh_report

        try:
            thresholds = load_eval_config(data).verdict if data is not None else None
            if not refresh_report(run, redact=redact, thresholds=thresholds):
                raise UnlearnError(f"{run}: no eval.json; run `unlearn eval --model {run}` first")
        except json.JSONDecodeError as exc:
            _fail(UnlearnError(f"{run / 'eval.json'} (or a file beside it): not valid JSON ({exc.msg})"))
        except (UnlearnError, ValueError) as exc:
            _fail(exc)
        typer.echo(f"wrote {run / 'report.html'}")
