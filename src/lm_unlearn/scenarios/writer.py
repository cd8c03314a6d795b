"""Write a scenario directory: JSONL files, `scenario.json` describing them, and ready configs.

A directory is built in a temporary sibling and renamed into place (`files.atomic_directory`),
so an interrupted `unlearn data make` leaves either the old directory or the whole new one.
The files contain nothing that depends on the time or the output path, so one seed gives
byte-identical JSONL and `scenario.json` anywhere; `run.yaml` and `eval.yaml` name the
files by the output path given, so `unlearn run OUT/run.yaml` works from the same directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lm_unlearn.errors import DataError
from lm_unlearn.files import atomic_directory, atomic_write_text


@dataclass
class DataFile:
    name: str  # file name, e.g. "forget.jsonl"
    role: str  # forget, retain, heldout, paraphrased, perturbed, learn, extraction, judge, ...
    description: str
    rows: list[dict] = field(default_factory=list)


def jsonl_text(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _role_path(out: Path, files: list[DataFile], role: str) -> str | None:
    for f in files:
        if f.role == role:
            return str(out / f.name)
    return None


def run_config(out: Path, files: list[DataFile], run_files: dict[str, str] | None = None) -> dict:
    """The `data:` part of a run config that unlearns this scenario's forget set
    (`run_files`: role -> file name, where a run reads another file than the role's)."""
    data = {}
    for role in ("forget", "retain", "heldout"):
        name = (run_files or {}).get(role)
        path = str(out / name) if name else _role_path(out, files, role)
        if path is not None:
            data[role] = {"path": path}
    return {"data": data}


def eval_config(
    out: Path, files: list[DataFile], judge: dict | None = None, eval_files: dict[str, str] | None = None
) -> dict:
    """An `unlearn eval --data` config naming each role's file (`eval_files`: role -> file name)."""
    cfg: dict = {}
    for role in ("forget", "heldout", "paraphrased", "retain", "unrelated", "extraction", "perturbed"):
        if eval_files and role in eval_files:
            cfg[role] = {"path": str(out / eval_files[role])}
            continue
        path = _role_path(out, files, role)
        if path is not None:
            cfg[role] = {"path": path}
    if judge is not None:
        cfg["judge"] = judge
    return cfg


def check_out_dir(out: Path) -> None:
    """Refuse to replace a directory that is not a previous scenario's output."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "scenario.json").exists())):
        raise DataError(
            f"{out} exists and is not a scenario directory (no scenario.json); choose another --out "
            "or remove it"
        )


def check_replaceable(out: Path) -> None:
    """`data make` replaces the whole directory: refuse one that holds anything its scenario.json
    does not list (the user's own files would be deleted with it)."""
    check_out_dir(out)
    if not out.is_dir() or not (out / "scenario.json").is_file():
        return
    try:
        meta = json.loads((out / "scenario.json").read_text(encoding="utf-8"))
        listed = {"scenario.json", *meta.get("files", {}), *meta.get("configs", {})}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
        listed = set()
    unlisted = sorted(p.name for p in out.iterdir() if p.name not in listed)
    if unlisted:
        shown = ", ".join(unlisted[:3]) + (f" and {len(unlisted) - 3} more" if len(unlisted) > 3 else "")
        raise DataError(
            f"{out} holds files its scenario.json does not list ({shown}); making the scenario again "
            "would delete them: move them out or choose another --out"
        )


def write_scenario(
    out: str | Path,
    scenario: str,
    seed: int,
    params: dict,
    files: list[DataFile],
    judge: dict | None = None,
    eval_files: dict[str, str] | None = None,
    run_files: dict[str, str] | None = None,
) -> Path:
    """Write `files` and `scenario.json` (+ `run.yaml`, `eval.yaml`) into `out`, atomically."""
    out = Path(out)
    check_replaceable(out)
    for f in files:
        if not f.rows:
            raise DataError(f"scenario {scenario}: {f.name} would be empty; use more --people")
    meta = {
        "scenario": scenario,
        "seed": seed,
        "params": params,
        "files": {
            f.name: {"role": f.role, "records": len(f.rows), "description": f.description} for f in files
        },
        "configs": {
            "run.yaml": "data sets for `unlearn run OUT/run.yaml` (unlearn forget, keep retain)",
            "eval.yaml": "data sets and judge for `unlearn eval --model RUN_DIR --data OUT/eval.yaml`",
        },
    }

    def fill(tmp: Path) -> None:
        for f in files:
            atomic_write_text(tmp / f.name, jsonl_text(f.rows))
        atomic_write_text(tmp / "scenario.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(
            tmp / "run.yaml", yaml.safe_dump(run_config(out, files, run_files), sort_keys=False)
        )
        atomic_write_text(
            tmp / "eval.yaml", yaml.safe_dump(eval_config(out, files, judge, eval_files), sort_keys=False)
        )

    return atomic_directory(out, fill)
