"""`unlearn analyze recovery`, `unlearn attack NAME`, `unlearn audit RUN_DIR`: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lm_unlearn.cli._common import TrustRemoteCodeOpt, fail, fail_os, setup_logging
from lm_unlearn.errors import UnlearnError

DataOpt = Annotated[
    Path | None, typer.Option("--data", help="Forget QA file (JSONL/JSON/CSV/Parquet); omit for the demo.")
]
TemplateOpt = Annotated[str, typer.Option(help="Prompt format: auto, chat or plain.")]
LimitOpt = Annotated[int | None, typer.Option(help="Use only the first N forget records.")]


def _records(data: Path | None, limit: int | None):
    from lm_unlearn.config import DatasetConfig
    from lm_unlearn.data import read_records
    from lm_unlearn.data.demo import demo_dataset

    cfg = (
        DatasetConfig(path=str(data), limit=limit)
        if data
        else demo_dataset("forget").model_copy(update={"limit": limit})
    )
    return read_records(cfg, "forget")


def recovery_command(
    original: Annotated[str, typer.Option(help="The model before unlearning (dir, hub id, builtin:NAME).")],
    unlearned: Annotated[str, typer.Option(help="The unlearned model (e.g. runs/NAME/model).")],
    data: DataOpt = None,
    window: Annotated[int, typer.Option(help="Consecutive layers per window.")] = 5,
    first_layer: Annotated[int, typer.Option(help="First layer windows may cover.")] = 0,
    last_layer: Annotated[
        int | None, typer.Option(help="Last layer windows may cover (default: the last).")
    ] = None,
    answer_only: Annotated[bool, typer.Option(help="Patch activations only at answer positions.")] = False,
    template: TemplateOpt = "auto",
    limit: LimitOpt = None,
    out: Annotated[Path, typer.Option(help="JSON output; a .png plot is written beside it.")] = Path(
        "recovery.json"
    ),
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Knowledge recovery scores (Hong et al., 2024) per layer window and intervention."""
    from lm_unlearn.analysis.plots import krs_figure
    from lm_unlearn.analysis.recovery import analyze_recovery
    from lm_unlearn.data import PromptFormat
    from lm_unlearn.files import atomic_write_bytes, atomic_write_json
    from lm_unlearn.models import load_model

    setup_logging()
    try:
        records = _records(data, limit)
        orig = load_model(original, trust_remote_code=trust_remote_code).model
        unl = load_model(unlearned, trust_remote_code=trust_remote_code)
        fmt = PromptFormat.choose(unl.tokenizer, template)
        result = analyze_recovery(orig, unl.model, records, fmt, window, first_layer, last_layer, answer_only)
    except UnlearnError as exc:
        fail(exc)
    result |= {"original": original, "unlearned": unlearned}
    atomic_write_json(out, result)
    atomic_write_bytes(out.with_suffix(".png"), krs_figure(result))
    for name, values in result["krs"].items():
        best = max(range(len(values)), key=lambda i: values[i] if values[i] == values[i] else -1e9)
        lo, hi = result["windows"][best]
        typer.echo(f"{name:<18} best KRS {values[best]:.3f} at layers {lo}-{hi}")
    typer.echo(f"wrote {out} and {out.with_suffix('.png')}")


def attack_command(
    name: Annotated[str, typer.Argument(help="relearn, quantize, paraphrase, jailbreak or logit_lens.")],
    model: Annotated[str, typer.Option(help="The unlearned model to attack.")],
    original: Annotated[
        str | None, typer.Option(help="The model before unlearning, to show how much of the gap closes.")
    ] = None,
    data: DataOpt = None,
    template: TemplateOpt = "auto",
    limit: LimitOpt = None,
    max_new_tokens: Annotated[int, typer.Option(help="Greedy answer length.")] = 32,
    steps: Annotated[int, typer.Option(help="relearn: fine-tuning steps.")] = 10,
    lr: Annotated[float, typer.Option(help="relearn: AdamW learning rate.")] = 2e-5,
    related: Annotated[
        Path | None, typer.Option(help="relearn: train on this file instead of half the forget set.")
    ] = None,
    bits: Annotated[str, typer.Option(help="quantize: comma-separated bit widths.")] = "8,4",
    group_size: Annotated[int, typer.Option(help="quantize: weights per scale group.")] = 128,
    out: Annotated[Path | None, typer.Option(help="Write the full result as JSON here.")] = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Attack an unlearned model and report how much forgotten knowledge comes back."""
    from lm_unlearn.analysis.attacks import ATTACKS
    from lm_unlearn.data import PromptFormat
    from lm_unlearn.files import atomic_write_json
    from lm_unlearn.models import load_model

    setup_logging()
    try:
        if name not in ATTACKS:
            raise UnlearnError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
        records = _records(data, limit)
        loaded = load_model(model, trust_remote_code=trust_remote_code)
        orig = load_model(original, trust_remote_code=trust_remote_code).model if original else None
        fmt = PromptFormat.choose(loaded.tokenizer, template)
        options: dict = {} if name == "logit_lens" else {"max_new_tokens": max_new_tokens}
        if name == "relearn":
            options |= {"steps": steps, "lr": lr, "related": _records(related, None) if related else None}
        if name == "quantize":
            options |= {"bits": tuple(int(b) for b in bits.split(",")), "group_size": group_size}
        result = ATTACKS[name](loaded.model, fmt, records, original=orig, **options)
    except (UnlearnError, ValueError) as exc:
        fail(exc)
    if out is not None:
        atomic_write_json(out, result)
    typer.echo(result.get("verdict") or result.get("skipped"))


def audit_command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (runs/NAME).")],
    attacks: Annotated[str, typer.Option(help="Comma-separated attacks to run.")] = (
        "relearn,quantize,paraphrase,jailbreak,logit_lens"
    ),
    recovery: Annotated[bool, typer.Option(help="Run the knowledge-recovery analysis.")] = True,
    window: Annotated[int, typer.Option(help="Recovery: consecutive layers per window.")] = 5,
    answer_only: Annotated[bool, typer.Option(help="Recovery: patch only answer positions.")] = False,
    limit: LimitOpt = None,
    max_new_tokens: Annotated[int, typer.Option(help="Greedy answer length.")] = 32,
    relearn_steps: Annotated[int, typer.Option(help="relearn: fine-tuning steps.")] = 10,
    redact: Annotated[
        bool, typer.Option(help="Leave forget questions and answers out of the outputs.")
    ] = False,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Run attacks and recovery analysis on a finished run; write RUN_DIR/audit.json and audit.html."""
    from lm_unlearn.analysis.audit import run_audit
    from lm_unlearn.models import remote_code

    setup_logging()
    try:
        with remote_code(trust_remote_code):
            result = run_audit(
                run_dir,
                attacks=[a.strip() for a in attacks.split(",") if a.strip()],
                recovery=recovery,
                window=window,
                answer_only=answer_only,
                limit=limit,
                max_new_tokens=max_new_tokens,
                relearn_steps=relearn_steps,
                redact_text=redact,
            )
    except UnlearnError as exc:
        fail(exc)
    except OSError as exc:
        fail_os(exc)
    for line in result["verdicts"]:
        typer.echo(line)
    typer.echo(f"wrote {run_dir / 'audit.json'} and {run_dir / 'audit.html'}")


def register(app: typer.Typer) -> None:
    analyze_app = typer.Typer(no_args_is_help=True, help="Analyses of an unlearned model.")
    analyze_app.command("recovery")(recovery_command)
    app.add_typer(analyze_app, name="analyze")
    app.command("attack")(attack_command)
    app.command("audit")(audit_command)
