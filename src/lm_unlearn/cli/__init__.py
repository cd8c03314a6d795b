"""The `unlearn` command: parse, call the library, print. No logic lives here.

One module per command group, each with `register(app)`; they import only `cli._common`, never
this module, so there is no import cycle.
"""

from __future__ import annotations

import sys

import typer

from lm_unlearn.cli import analysis, benchmark, data, evaluate, perf, run, tune

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Machine unlearning for large language models."
)

# The order is the order of `unlearn --help`.
for group in (run, evaluate, analysis, perf, benchmark, tune, data):
    group.register(app)


def main(argv: list[str] | None = None) -> None:
    app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
