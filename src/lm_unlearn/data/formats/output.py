"""Write converted files into an output directory and keep its `scenario.json` honest.

Several inputs of one format may be converted into one directory (TOFU's forget10 and
retain90): `scenario.json` keeps the entries of earlier conversions and adds or replaces
this one's. What that allows is checked before anything is written:

- every output name is one plain file name inside `out` (a `--role ../x` cannot escape it);
- no output is the input file itself (converting `DIR/forget10.jsonl --out DIR`);
- files of another format (or a generated scenario) are replaced only with `force`;
- no two files share a role (`benchmark prepare` picks one file per role).

A file this conversion would write but finds no records for (PKU's forget set of an
all-safe input) is removed with its entry, so no earlier conversion's file survives under
it. The input is hashed before anything is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lm_unlearn.errors import DataError
from lm_unlearn.files import atomic_write_text, sha256_file
from lm_unlearn.scenarios.writer import DataFile, check_out_dir, jsonl_text

META = "scenario.json"


def check_name(name: str, what: str = "output name") -> str:
    """`name` if it is one plain file name (no directory part, not hidden), else a DataError."""
    plain = name and name == Path(name).name and name not in (".", "..") and not name.startswith(".")
    if not plain or "/" in name or "\\" in name or "\0" in name:
        raise DataError(f"{what} {name!r} must be a plain file name, without '/', '\\' or a leading '.'")
    return name


def _refuse_source_overwrite(out: Path, source: Path, names: list[str]) -> None:
    for name in [*names, META]:
        target = out / name
        if target.exists() and os.path.samefile(target, source):
            raise DataError(
                f"{target} is the input file; converting would overwrite it. Choose another --out"
            )


def _other_format(meta: dict, fmt: str) -> list[str]:
    """Files in `meta` that are not this format's conversions (or the whole generated scenario)."""
    if meta and not str(meta.get("scenario", "")).startswith("converted:"):
        return [*meta.get("files", {}), *meta.get("configs", {})]
    return [name for name, info in meta.get("files", {}).items() if info.get("format") != fmt]


def _check_roles(roles: dict[str, str]) -> None:
    """`roles`: file name -> role; a role held by two files is an error naming both."""
    holder: dict[str, str] = {}
    for name, role in roles.items():
        if role in holder:
            raise DataError(
                f"{holder[role]} and {name} would both have the role '{role}' in {META}; convert one "
                "into another --out, or name it with --role NAME (a name starting with forget, retain "
                "or holdout takes that role; any other name is its own role)"
            )
        holder[role] = name


def _describe(meta: dict, names: list[str]) -> str:
    files = meta.get("files", {})
    return ", ".join(f"{n} ({files.get(n, {}).get('format', meta.get('scenario', '?'))})" for n in names)


def _remove(out: Path, meta: dict, names: list[str]) -> None:
    for name in names:
        meta.get("files", {}).pop(name, None)
        meta.get("configs", {}).pop(name, None)
        path = out / check_name(name, f"file name in {out / META}")
        if path.is_file() or path.is_symlink():
            path.unlink()


def _read_meta(out: Path) -> dict:
    path = out / META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise DataError(f"{path}: not valid JSON; remove it or choose another --out") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("files", {}), dict):
        raise DataError(f"{path}: expected an object with 'files'; remove it or choose another --out")
    return meta


def write_converted(
    out: str | Path, fmt: str, source: Path, files: list[DataFile], force: bool = False
) -> list[str]:
    """Write `files` into `out`, record them in `out/scenario.json`; return the names written."""
    out, source = Path(out), Path(source).resolve()
    names = [check_name(f.name) for f in files]
    check_out_dir(out)
    _refuse_source_overwrite(out, source, names)
    source_sha256 = sha256_file(source)  # before writing: the record is of the input as read
    meta = _read_meta(out)
    others = _other_format(meta, fmt)
    if others and not force:
        raise DataError(
            f"{out} holds files of another conversion or scenario: {_describe(meta, others)}; "
            "choose another --out, or add --force to replace them"
        )
    written = [f for f in files if f.rows]
    kept = {n: i.get("role") for n, i in meta.get("files", {}).items() if n not in others + names}
    _check_roles(kept | {f.name: f.role for f in written})
    _remove(out, meta, others + [f.name for f in files if not f.rows])
    if not str(meta.get("scenario", "converted:")).startswith("converted:"):
        meta = {}  # a generated scenario's seed and params describe files now gone
    meta["scenario"] = f"converted:{fmt}"
    meta.setdefault("files", {})
    for f in written:
        atomic_write_text(out / f.name, jsonl_text(f.rows))
        meta["files"][f.name] = {
            "role": f.role,
            "records": len(f.rows),
            "description": f.description,
            "format": fmt,
            "source": str(source),
            "source_sha256": source_sha256,
        }
    atomic_write_text(out / META, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return [f.name for f in written]
