"""`unlearn data make SCENARIO` and `unlearn data convert FORMAT INPUT`: parse, call, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lm_unlearn.cli._common import fail
from lm_unlearn.errors import UnlearnError


def _report(out: Path, only: list[str] | None = None) -> None:
    meta = json.loads((out / "scenario.json").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out}:")
    for name, info in meta["files"].items():
        if only is not None and name not in only:
            continue
        typer.echo(f"  {name:<26} {info['role']:<18} {info['records']:>6} records  {info['description']}")


def make(
    scenario: Annotated[
        str,
        typer.Argument(
            help="world, privacy, knowledge, copyright, hallucination, "
            "harmful or concept; `unlearn data list` describes them."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory (replaced if it holds an earlier scenario).")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    people: Annotated[
        int | None,
        typer.Option(
            help="world, privacy, knowledge, hallucination: number of invented people (default 200)."
        ),
    ] = None,
    forget_percent: Annotated[
        int | None, typer.Option(help="knowledge: forget 1, 5 or 10 % of the people (default 10).")
    ] = None,
    chapters: Annotated[int | None, typer.Option(help="copyright: number of chapters (default 60).")] = None,
) -> None:
    """Generate a fictitious scenario as JSONL files that `unlearn run` reads."""
    from lm_unlearn.scenarios import make as make_scenario

    try:
        path = make_scenario(
            scenario, out, seed=seed, people=people, forget_percent=forget_percent, chapters=chapters
        )
    except (UnlearnError, ValueError) as exc:
        fail(exc)
    _report(path)
    typer.echo(f"unlearn:  unlearn run {path / 'run.yaml'}")
    typer.echo(f"evaluate: unlearn eval --model RUN_DIR --data {path / 'eval.yaml'}")
    if (path / "learn.jsonl").is_file():
        typer.echo("note: teach the model learn.jsonl first; it has none of this yet (see docs/data.md)")


def convert(
    fmt: Annotated[
        str,
        typer.Argument(metavar="FORMAT", help="pku-saferlhf, truthfulqa, halueval, tofu, muse or concept."),
    ],
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="The file (JSONL, JSON, CSV, Parquet; MUSE raw text also .txt)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory; several inputs may share one.")],
    role: Annotated[
        str | None,
        typer.Option(
            help="tofu, muse: output file name, a plain name (default: the input's, e.g. forget10); "
            "its prefix (forget, retain, holdout) gives the role."
        ),
    ] = None,
    concept: Annotated[str | None, typer.Option(help="concept: convert only this concept.")] = None,
    force: Annotated[
        bool, typer.Option(help="Replace the files of another format or scenario in --out.")
    ] = False,
) -> None:
    """Convert a public data set's file into prompt/response JSONL (forget, retain, ...)."""
    from lm_unlearn.data.formats import convert_files

    try:
        written = convert_files(fmt, source, out, role=role, concept=concept, force=force)
    except UnlearnError as exc:
        fail(exc)
    _report(out, only=written)


def list_() -> None:
    """List the scenarios and the public formats."""
    from lm_unlearn.data.formats import FORMATS, summary
    from lm_unlearn.scenarios import SCENARIOS
    from lm_unlearn.scenarios import summary as scenario_summary

    typer.echo("Scenarios (unlearn data make NAME --out DIR):")
    for name in SCENARIOS:
        typer.echo(f"  {name:<14} {scenario_summary(name)}")
    typer.echo("\nFormats (unlearn data convert FORMAT INPUT --out DIR):")
    for name in FORMATS:
        typer.echo(f"  {name:<14} {summary(name)}")


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(no_args_is_help=True, help="Generate scenario data or convert public data sets.")
    data_app.command("make")(make)
    data_app.command("convert")(convert)
    data_app.command("list")(list_)
    app.add_typer(data_app, name="data")
