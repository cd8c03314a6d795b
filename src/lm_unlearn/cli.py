"""The `unlearn` command: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lm_unlearn.cli_options import TrustRemoteCodeOpt
from lm_unlearn.errors import UnlearnError, describe_os_error

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Machine unlearning for large language models."
)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LM_UNLEARN_LOG", "INFO"), format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="YAML config; omit for the demo.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: key=value.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run dir.")] = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Unlearn: train the model away from the forget set, write runs/<name>/."""
    from lm_unlearn.config import load_config
    from lm_unlearn.engine import train
    from lm_unlearn.models import remote_code
    from lm_unlearn.rundir_checks import check_resumable, new_run_dir

    _setup_logging()
    try:
        if resume is not None:
            if config is not None or set_:
                raise UnlearnError("--resume takes the run's saved config; drop CONFIG and --set")
            check_resumable(resume)
            cfg = load_config(resume / "config.yaml", trust_remote_code=trust_remote_code)
            run_dir = resume
        else:
            cfg = load_config(config, set_ or [], trust_remote_code=trust_remote_code)
            run_dir = new_run_dir(cfg)
        with remote_code(trust_remote_code):
            result = train(cfg, run_dir, resume=resume is not None)
            typer.echo(f"done: {result.steps} steps ({result.stop_reason}); outputs in {result.run_dir}")
            main_process = int(os.environ.get("RANK", "0")) == 0  # one evaluation per launch
            if cfg.evaluate and main_process and (result.run_dir / "manifest.json").is_file():
                from lm_unlearn.cli_eval import evaluate_run

                typer.echo(f"report: {evaluate_run(result.run_dir)}")
    except UnlearnError as exc:
        _fail(exc)
    except OSError as exc:  # an unreadable input or unwritable output, named in one line
        _fail(UnlearnError(describe_os_error(exc)))


@app.command()
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


from lm_unlearn.cli_eval import register as _register_eval  # noqa: E402

_register_eval(app)

from lm_unlearn.cli_analysis import register as _register_analysis  # noqa: E402

_register_analysis(app)

from lm_unlearn.cli_data import register as _register_data  # noqa: E402

_register_data(app)

from lm_unlearn.cli_bench import register as _register_bench  # noqa: E402

_register_bench(app)

from lm_unlearn.cli_benchmark import register as _register_benchmark  # noqa: E402

_register_benchmark(app)

from lm_unlearn.cli_tune import register as _register_tune  # noqa: E402

_register_tune(app)


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)


if __name__ == "__main__":
    main()
