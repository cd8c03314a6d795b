"""Options shared by several `unlearn` commands."""

from __future__ import annotations

from typing import Annotated

import typer

TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Run Python code shipped with a model directory or hub repo. Only this flag allows "
        "it, on each invocation; a saved `trust_remote_code: true` in a config or run is refused.",
    ),
]
