"""`unlearn run` and `unlearn methods`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lm_unlearn.cli._common import ConfigArg, SetOpt, TrustRemoteCodeOpt, fail, fail_os, setup_logging
from lm_unlearn.errors import UnlearnError


def run(
    config: ConfigArg = None,
    set_: SetOpt = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run dir.")] = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Unlearn: train the model away from the forget set, write runs/<name>/."""
    from lm_unlearn.api import unlearn
    from lm_unlearn.config import config_source, load_config
    from lm_unlearn.models import remote_code
    from lm_unlearn.objectives.registry import check_objective
    from lm_unlearn.rundir import RunDir
    from lm_unlearn.rundir_checks import check_resumable, new_run_dir

    setup_logging()
    try:
        if resume is not None:
            if config is not None or set_:
                raise UnlearnError("--resume takes the run's saved config; drop CONFIG and --set")
            check_resumable(resume)
            cfg = load_config(RunDir(resume).config, trust_remote_code=trust_remote_code)
            run_dir = resume
        else:
            cfg = load_config(config, set_ or [], trust_remote_code=trust_remote_code)
            check_objective(cfg.method, cfg.objective, config_source(config, set_))
            run_dir = new_run_dir(cfg)
        with remote_code(trust_remote_code):
            result = unlearn(cfg, run_dir, resume=resume is not None)
            typer.echo(f"done: {result.steps} steps ({result.stop_reason}); outputs in {result.run_dir}")
            main_process = int(os.environ.get("RANK", "0")) == 0  # one evaluation per launch
            if cfg.evaluate and main_process and RunDir(result.run_dir).manifest.is_file():
                from lm_unlearn.evaluation.run import evaluate_run

                typer.echo(f"report: {evaluate_run(result.run_dir)}")
    except UnlearnError as exc:
        fail(exc)
    except OSError as exc:
        fail_os(exc)


def methods() -> None:
    """List objective terms and recipes."""
    from lm_unlearn.objectives.registry import RECIPES, TERMS, _load_builtin_terms

    _load_builtin_terms()
    typer.echo("Recipes (--set method=NAME):")
    for r in sorted(RECIPES.values(), key=lambda r: r.name):
        typer.echo(f"  {r.name:<14} {r.summary}")
    typer.echo("\nTerms (objective: {NAME: weight, ...}):")
    for t in sorted(TERMS.values(), key=lambda t: t.name):
        params = ", ".join(f"{k}={v!r}" for k, v in t.params().items())
        ref = " [reference]" if t.needs_reference else ""
        typer.echo(f"  {t.name:<14} {t.summary}{ref}" + (f"  ({params})" if params else ""))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("methods")(methods)
