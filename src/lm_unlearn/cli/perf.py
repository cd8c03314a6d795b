"""`unlearn perf` (formerly `unlearn bench`): parse, call lm_unlearn.perf, print the table and
write JSON. Speed and memory only; the quality leaderboard is `unlearn benchmark`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from lm_unlearn.cli._common import SetOpt, fail, setup_logging
from lm_unlearn.errors import UnlearnError

# Without a config: the batch shape of the published peer measurements (4 forget + 4 retain QA
# pairs per step); --set still overrides it.
PERF_DEFAULTS = ["train.batch_size=4", "train.retain_batch_size=4"]


def perf(
    config: Annotated[Path | None, typer.Argument(help="YAML config; omit for the default model.")] = None,
    set_: SetOpt = None,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="Recipe to measure (repeatable); default: graddiff, npo."),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Timed optimizer steps per method.")] = 3,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed steps first.")] = 1,
    eval_: Annotated[bool, typer.Option("--eval/--no-eval", help="Also measure evaluation.")] = True,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline/--no-baseline",
            help="Also time a stock step (full logits, live reference, full fine-tuning), same batches.",
        ),
    ] = True,
    prompts: Annotated[int, typer.Option(min=1, help="Prompts for the generation benchmark.")] = 16,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 32,
    isolate: Annotated[
        bool, typer.Option("--isolate/--no-isolate", help="Each measurement in a fresh process.")
    ] = True,
    out: Annotated[Path | None, typer.Option(help="JSON output file (default: perf.json).")] = None,
    peak_size: Annotated[
        int | None,
        typer.Option(min=64, help="Matrix size for the matmul peak (default 2048 CPU, 8192 GPU)."),
    ] = None,
) -> None:
    """Measure unlearning and evaluation throughput, step time, FLOPs, peak memory and matmul peak,
    against a stock Trainer-style step on the same batches."""
    from lm_unlearn.config import load_config
    from lm_unlearn.files import atomic_write_json
    from lm_unlearn.perf import format_table, run_perf

    setup_logging()
    out = out or Path("perf.json")
    try:
        cfg = load_config(config, (PERF_DEFAULTS if config is None else []) + (set_ or []))
        chosen = config is not None or any(s.startswith(("method=", "objective")) for s in set_ or [])
        methods = method if method is not None else ([] if chosen else ["graddiff", "npo"])
        result = run_perf(
            cfg,
            methods,
            warmup=warmup,
            steps=steps,
            eval_prompts=prompts,
            max_new_tokens=max_new_tokens,
            with_eval=eval_,
            isolate=isolate,
            peak_size=peak_size,
            baseline=baseline,
            overrides=set_ or [],
        )
    except UnlearnError as exc:
        fail(exc)
    atomic_write_json(out, result)
    typer.echo(format_table(result))
    typer.echo(f"\nwritten: {out}")


@functools.wraps(perf)
def bench(**options) -> None:
    """Deprecated name of `unlearn perf` (kept for one release)."""
    typer.secho(
        "note: `unlearn bench` is now `unlearn perf`; the old name goes in the next release", err=True
    )
    options["out"] = options["out"] or Path("bench.json")  # the old name's default output
    perf(**options)


def register(app: typer.Typer) -> None:
    app.command("perf")(perf)
    app.command("bench", help="Deprecated name of `unlearn perf` (kept for one release).")(bench)
