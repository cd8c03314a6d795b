"""`unlearn tune`: parse, call lm_unlearn.tune, print where the results are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lm_unlearn.cli._common import SetOpt, fail, setup_logging
from lm_unlearn.errors import UnlearnError


def tune(
    config: Annotated[Path | None, typer.Argument(help="YAML run config; omit for the demo.")] = None,
    set_: SetOpt = None,
    trials: Annotated[int, typer.Option(min=1, help="Finished trials the study should hold.")] = 20,
    out: Annotated[Path | None, typer.Option(help="Tune directory (default: tunes/<study>).")] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL shared by several processes (default: SQLite in --out)."),
    ] = None,
    study: Annotated[str, typer.Option(help="Study name (resumes a study of that name).")] = "tune",
) -> None:
    """Search lr, steps, term weights and method parameters for the config's train.target.

    Trials are judged on the validation splits only; an interrupted tune resumes.
    """
    from lm_unlearn.config import apply_overrides, read_yaml_mapping
    from lm_unlearn.tune import run_tune

    setup_logging()
    try:
        base = read_yaml_mapping(config, "config file", "a mapping of settings") if config else {}
        apply_overrides(base, list(set_ or []))
        best = run_tune(base, out or Path("tunes") / study, trials, storage, study)
        typer.echo(f"best config: {best}\nall trials: {best.parent / 'trials.csv'}")
        typer.echo(f"Pareto front: {best.parent / 'pareto.csv'} and pareto.png")
    except UnlearnError as exc:
        fail(exc)


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
