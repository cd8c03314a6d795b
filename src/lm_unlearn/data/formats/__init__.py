"""Converters from public unlearning/safety data formats to our prompt/response JSONL.

`unlearn data convert FORMAT INPUT --out DIR` calls `convert`; each format is one small
module whose docstring gives the source paper, the fields read and how they map to roles.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lm_unlearn.data.formats import concept, halueval, muse, pku_saferlhf, tofu, truthfulqa
from lm_unlearn.data.formats.output import check_name, write_converted
from lm_unlearn.data.readers import shorten
from lm_unlearn.errors import DataError

FORMATS: dict[str, Callable] = {
    "pku-saferlhf": pku_saferlhf.convert,
    "truthfulqa": truthfulqa.convert,
    "halueval": halueval.convert,
    "tofu": tofu.convert,
    "muse": muse.convert,
    "concept": concept.convert,
}


def summary(fmt: str) -> str:
    module = {
        "pku-saferlhf": pku_saferlhf,
        "truthfulqa": truthfulqa,
        "halueval": halueval,
        "tofu": tofu,
        "muse": muse,
        "concept": concept,
    }[fmt]
    first_paragraph = (module.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(first_paragraph.split())


def convert_files(
    fmt: str,
    source: str | Path,
    out: str | Path,
    role: str | None = None,
    concept: str | None = None,
    force: bool = False,
) -> list[str]:
    """Convert one file in a public format into JSONL files (and scenario.json) in `out`.

    Returns the names of the files this call wrote. `force` replaces another format's files.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise DataError(f"unknown format '{shorten(fmt, 40)}'; choose one of: {', '.join(FORMATS)}")
    if concept is not None and fmt != "concept":
        raise DataError("--concept applies to the concept format only")
    if role is not None:
        check_name(role, "--role")
    source = Path(source)
    options = {"concept": concept} if fmt == "concept" else {}
    files = FORMATS[fmt](source, role, **options)
    return write_converted(out, fmt, source, files, force=force)


def convert(fmt: str, source: str | Path, out: str | Path, **options) -> Path:
    """`convert_files`, returning the output directory."""
    convert_files(fmt, source, out, **options)
    return Path(out)
