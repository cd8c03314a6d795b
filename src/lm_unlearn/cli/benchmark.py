"""`unlearn prepare` and `unlearn benchmark`: parse, call lm_unlearn.benchmark, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lm_unlearn.benchmark.audit import AuditBudget
from lm_unlearn.benchmark.prepare import TeachSettings
from lm_unlearn.cli._common import fail, setup_logging
from lm_unlearn.config import DEFAULT_MODEL
from lm_unlearn.errors import UnlearnError

defaults = TeachSettings()
budget = AuditBudget()


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def prepare_command(
    scenario: Annotated[
        str,
        typer.Argument(help="A scenario name (knowledge, privacy, ...) or a directory with scenario.json."),
    ],
    seed: Annotated[int, typer.Option(help="Scenario data and training seed.")] = 0,
    model: Annotated[str, typer.Option(help="Base model to teach.")] = DEFAULT_MODEL,
    people: Annotated[
        int | None, typer.Option(help="Invented people, for scenarios that take it (default 20).")
    ] = 20,
    epochs: Annotated[float, typer.Option(help="Passes over the teaching data.")] = defaults.epochs,
    mode: Annotated[str, typer.Option(help="full or lora.")] = defaults.mode,
    lr: Annotated[float, typer.Option(help="Teaching learning rate.")] = defaults.lr,
    force: Annotated[bool, typer.Option(help="Teach again even if the cache has it.")] = False,
) -> None:
    """Teach the base model a scenario (target) and its retain part only (retrain); cached."""
    from lm_unlearn.benchmark.prepare import prepare

    setup_logging()
    teach = TeachSettings(mode=mode, lr=lr, epochs=epochs, seed=seed)
    try:
        prepared = prepare(scenario, seed=seed, model=model, people=people, teach=teach, force=force)
    except (UnlearnError, ValueError) as exc:
        fail(exc)
    typer.echo(f"prepared {prepared.root}")
    typer.echo(f"  target:  {prepared.target}")
    typer.echo(f"  retrain: {prepared.retrain}")
    typer.echo(f"  data:    {prepared.data_dir}")


def benchmark_command(
    scenario: Annotated[
        str, typer.Option(help="Comma-separated scenarios (or scenario dirs).")
    ] = "knowledge",
    methods: Annotated[str, typer.Option(help="Comma-separated recipes.")] = "yao,npo,graddiff",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0",
    model: Annotated[str, typer.Option(help="Base model.")] = DEFAULT_MODEL,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Unlearning steps per run (with --stop target: the most). Default: the recipe's own "
            "budget where it has one (yao: 100), else 60.",
        ),
    ] = None,
    stop: Annotated[
        str,
        typer.Option(
            help="target: stop each run when its held-out forget NLL reaches the held-out people's "
            "(validated every --eval-every steps); steps: run exactly --steps."
        ),
    ] = "target",
    eval_every: Annotated[int, typer.Option(min=1, help="With --stop target: validate every N steps.")] = 2,
    people: Annotated[int | None, typer.Option(help="Invented people, for scenarios that take it.")] = 20,
    metrics: Annotated[
        str | None, typer.Option(help="Metric groups, e.g. likelihood,forget_quality (default: all).")
    ] = None,
    eval_limit: Annotated[
        int, typer.Option(help="Cap on retain/unrelated evaluation records (0: no cap).")
    ] = 32,
    epochs: Annotated[float, typer.Option(help="prepare: passes over the teaching data.")] = defaults.epochs,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("benchmarks/default"),
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override for every unlearning run: key=value; METHOD:key=value for one method's runs.",
        ),
    ] = None,
    audit: Annotated[
        str | None,
        typer.Option(
            help="Attacks run on every method's run at one budget, e.g. relearn,quantize; adds the "
            "share of the forget gap each closes."
        ),
    ] = None,
    relearn_steps: Annotated[
        int, typer.Option(min=1, help="--audit relearn: fine-tuning steps.")
    ] = budget.relearn_steps,
    relearn_lr: Annotated[
        float, typer.Option(help="--audit relearn: AdamW learning rate.")
    ] = budget.relearn_lr,
) -> None:
    """Run methods × scenarios × seeds; write leaderboard.md, leaderboard.csv and trade-off plots."""
    from lm_unlearn.benchmark.grid import GridSpec, run_grid

    setup_logging()
    spec = GridSpec(
        scenarios=_split(scenario),
        methods=_split(methods),
        seeds=[int(s) for s in _split(seeds)],
        model=model,
        steps=steps,
        stop=stop,
        eval_every=eval_every,
        people=people,
        metrics=_split(metrics) if metrics else None,
        eval_limit=eval_limit or None,
        teach=TeachSettings(epochs=epochs),
        overrides=set_ or [],
        out=out,
        audit=_split(audit) if audit else [],
        audit_budget=AuditBudget(relearn_steps=relearn_steps, relearn_lr=relearn_lr),
    )
    try:
        paths = run_grid(spec)
    except (UnlearnError, ValueError) as exc:
        fail(exc)
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


def register(app: typer.Typer) -> None:
    """Add the `prepare` and `benchmark` commands to the `unlearn` app."""
    app.command("prepare")(prepare_command)
    app.command("benchmark")(benchmark_command)
