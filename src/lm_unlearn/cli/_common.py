"""What every `unlearn` command shares: the one-line failure, logging set-up and common options."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from lm_unlearn.errors import UnlearnError, describe_os_error

TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Run Python code shipped with a model directory or hub repo. Only this flag allows "
        "it, on each invocation; a saved `trust_remote_code: true` in a config or run is refused.",
    ),
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override: key=value.")]
ConfigArg = Annotated[Path | None, typer.Argument(help="YAML config; omit for the demo.")]


def fail(exc: Exception) -> NoReturn:
    """Print `error: ...` in red on stderr and exit with code 2 (no traceback for a user error)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def fail_os(exc: OSError) -> NoReturn:
    """An unreadable input or unwritable output, named in one line."""
    fail(UnlearnError(describe_os_error(exc)))


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LM_UNLEARN_LOG", "INFO"), format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
