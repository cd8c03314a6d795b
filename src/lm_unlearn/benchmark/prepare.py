"""`unlearn prepare`: teach a base model a scenario (the "target") and its retain part only
(the "retrain" gold standard), cached under the user cache directory.

A generated scenario is invented, so no model knows it: before anything can be unlearned the
base model is fine-tuned on `learn.jsonl` (the `sft` term). The retrain model is fine-tuned the
same way on `learn.jsonl` without its forget part; an ideal unlearning method ends where it
is (TOFU's retain model, Maini et al., 2024). Both live in

    cache_dir()/prepared/<scenario>-seed<S>-<hash>/
        data/        the scenario files (run.yaml, eval.yaml, ...)
        teach/       target.jsonl, retrain.jsonl: exactly what each model was taught
        target/      a run directory; target/model is the taught model
        retrain/     likewise
        prepared.json

The hash covers the base model, the scenario files and the teaching settings, so a change in
any of them prepares afresh; the directory is built beside its final place and renamed in.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lm_unlearn.config import DEFAULT_MODEL, check_plain_name, short_repr, truncate
from lm_unlearn.errors import DataError
from lm_unlearn.files import atomic_directory, atomic_write_json, atomic_write_text, sha256_tree
from lm_unlearn.rundir import RunDir

log = logging.getLogger(__name__)

VERSION = 1  # bump when the teaching procedure changes, so old caches are not reused
ROLES_WITH_DATA = ("forget", "retain", "heldout")


@dataclass(frozen=True)
class TeachSettings:
    """How a model is taught a scenario. Defaults: SmolLM2-135M on a 2-core CPU in minutes."""

    # LoRA: 25-28 s per step of 8 on SmolLM2-135M vs 42 s for full fine-tuning, measured on a
    # busy 2-core CPU (docs/benchmark.md); LoRA wants a ~10x larger learning rate than full.
    mode: str = "lora"
    lr: float = 1e-3
    epochs: float = 4.0
    batch_size: int = 8
    max_length: int = 128
    precision: str = "auto"
    lora_r: int = 16
    seed: int = 0

    def steps(self, records: int) -> int:
        return max(1, math.ceil(self.epochs * records / self.batch_size))


@dataclass
class Prepared:
    """A prepared scenario: its data and the two taught models (local HF directories)."""

    root: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def target(self) -> Path:
        return RunDir(self.root / "target").model  # the teaching run's output

    @property
    def retrain(self) -> Path:
        return RunDir(self.root / "retrain").model

    def run_data(self) -> dict[str, Any]:
        """The `data:` section for unlearning runs, paths pointing into data/."""
        path = self.data_dir / "run.yaml"
        if path.is_file():
            section = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data", {})
        else:
            section = {role: {"path": str(p)} for role, p in _files_by_role(self.data_dir).items()}
            section = {k: v for k, v in section.items() if k in ROLES_WITH_DATA}
        return rebase(section, self.data_dir, path)

    def eval_data(self) -> dict[str, Any]:
        """The evaluation config (eval.yaml) with paths pointing into data/."""
        path = self.data_dir / "eval.yaml"
        if path.is_file():  # kept current by `refresh_data`
            return rebase(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, self.data_dir, path)
        data = self.run_data()  # a converted directory: its files by role, truth-ratio questions too
        by_role = _files_by_role(self.data_dir)
        perturbed = by_role.get("forget_perturbed", by_role.get("perturbed"))  # TOFU's, or a converter's
        if perturbed is not None:
            data["perturbed"] = {"path": str(perturbed)}
        return data


def rebase(section: Any, root: Path, source: Path) -> Any:
    """Point every `path:` at root/<file name>.

    `unlearn data make --out DIR` writes paths as typed at --out (relative to the cwd of that
    call, or to a build directory since renamed), so only the file name is trusted, and it
    must name one of the scenario's own files: run.yaml and eval.yaml (`source`) are scenario
    data, and the benchmark trains on and evaluates what they name. Hub data (`hf:`) stays.
    """
    if isinstance(section, list):
        return [rebase(v, root, source) for v in section]
    if not isinstance(section, dict):
        return section
    out = {k: rebase(v, root, source) for k, v in section.items()}
    path = out.get("path")
    if isinstance(path, str) and not path.startswith("hf:"):
        local = root / Path(path).name
        if not local.is_file() or local.resolve().parent != root.resolve():
            raise DataError(
                f"{source}: path {truncate(path)} is not a file inside {root}; a scenario's "
                "configs may name only its own files"
            )
        out["path"] = str(local.resolve())
    return out


def _files_by_role(data_dir: Path) -> dict[str, Path]:
    """scenario.json's files by role. A scenario.json is data, not trusted: each name must be a
    plain file name of a regular file inside data_dir (no '..', no absolute path, no link out),
    and a role held by two files is an error (which one to use is not ours to guess)."""
    meta_path = data_dir / "scenario.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        files = meta.get("files", {})
        roles = {name: info["role"] for name, info in files.items()}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise DataError(f"{meta_path}: not a scenario description ({truncate(str(exc))})") from None
    real_dir = data_dir.resolve()
    out: dict[str, Path] = {}
    for name, role in roles.items():
        try:
            check_plain_name(name, "a file name")
        except ValueError as exc:
            raise DataError(f"{meta_path}: files: {exc}, got {short_repr(name)}") from None
        path = data_dir / name
        if not path.is_file() or path.resolve().parent != real_dir:
            raise DataError(
                f"{meta_path}: files: {truncate(name)} is not a file inside {data_dir} (missing, or a "
                "link elsewhere); list only the scenario's own files"
            )
        if role in out:
            raise DataError(
                f"{meta_path}: {out[role].name} and {name} both have the role '{role}'; "
                "convert them into separate directories (or reconvert; `unlearn data convert` now gives "
                "each split its own role)"
            )
        out[role] = path
    return out


def _no_links(directory: str, names: list[str]) -> list[str]:
    """copytree ignore function: leave symbolic links out, so a copy never pulls in a file from
    outside the scenario directory."""
    skipped = [n for n in names if os.path.islink(os.path.join(directory, n))]
    for n in skipped:
        log.warning("not copying the link %s", os.path.join(directory, n))
    return skipped


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {i}: not valid JSON ({exc.msg})") from None
    return rows


def _text(row: dict) -> str:
    return " ".join(str(row.get(k, "")) for k in ("prompt", "response", "text"))


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def split_learn(data_dir: Path) -> tuple[list[dict], list[dict]]:
    """(what the target is taught, what the retrain model is taught) for a scenario directory.

    The target learns `learn.jsonl` (forget + retain files when there is none). The retrain set
    drops every learn record that is forget-side: one that equals a record of a forget-role
    file, or one that shares more word trigrams found only in forget-role files than trigrams
    found only in retain-role files. The second rule catches texts about the forget subjects
    that no forget file holds, such as the `knowledge` scenario's biographies of the forget
    people, while trigrams common to both sides ("was born in") decide nothing.
    """
    by_role = _files_by_role(data_dir)
    forget_files = [p for role, p in by_role.items() if role.startswith("forget")]
    retain_files = [p for role, p in by_role.items() if role.startswith("retain")]
    if not forget_files:
        raise DataError(f"{data_dir / 'scenario.json'}: no file has the role 'forget'; nothing to unlearn")
    forget_rows = [r for p in forget_files for r in _read_jsonl(p)]
    retain_rows = [r for p in retain_files for r in _read_jsonl(p)]
    learn_path = by_role.get("learn")
    learn = _read_jsonl(learn_path) if learn_path else forget_rows + retain_rows
    forget_grams = set().union(*(_trigrams(_text(r)) for r in forget_rows))
    retain_grams = set().union(*(_trigrams(_text(r)) for r in retain_rows))
    only_forget, only_retain = forget_grams - retain_grams, retain_grams - forget_grams
    exact = {_text(r) for r in forget_rows}

    def forget_side(row: dict) -> bool:
        grams = _trigrams(_text(row))
        return _text(row) in exact or len(grams & only_forget) > len(grams & only_retain)

    return learn, [r for r in learn if not forget_side(r)]


def _make_scenario(name: str, out: Path, seed: int, people: int | None) -> Path:
    from lm_unlearn.scenarios import SCENARIOS, make

    if name not in SCENARIOS:
        raise DataError(
            f"unknown scenario '{name}'; choose one of {', '.join(SCENARIOS)} or a directory "
            "with scenario.json (from `unlearn data make` or `unlearn data convert`)"
        )
    accepted = inspect.signature(importlib.import_module(f"lm_unlearn.scenarios.{SCENARIOS[name]}").make)
    options = {"people": people} if "people" in accepted.parameters else {}
    return make(name, out, seed=seed, **options)


def _model_fingerprint(spec: str) -> str:
    path = Path(spec)
    if path.is_dir():  # a local model: its bytes, since the same path may hold another model later
        return json.dumps(sha256_tree(path), sort_keys=True)
    return spec  # hub ids and builtin names name fixed weights


def cache_key(model: str, taught: dict[str, list[dict]], teach: TeachSettings) -> str:
    """Hash of what decides the two models: base model, the rows each is taught, the settings.

    Evaluation-only files (paraphrases, perturbed answers, unrelated questions) are left out,
    so improving them reuses the taught models; `prepare` refreshes them in the cache.
    """
    rows = {
        name: hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest() for name, r in taught.items()
    }
    blob = json.dumps(
        {"version": VERSION, "model": _model_fingerprint(model), "taught": rows, "teach": asdict(teach)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _same_config(a: Path, b: Path) -> bool:
    """run.yaml/eval.yaml name files by the path they were written at; `rebase` uses only the
    file names, so two configs that differ only in directories are the same."""

    def names(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: Path(v).name if k == "path" and isinstance(v, str) else names(v) for k, v in value.items()
            }
        return [names(v) for v in value] if isinstance(value, list) else value

    return names(yaml.safe_load(a.read_text(encoding="utf-8"))) == names(
        yaml.safe_load(b.read_text(encoding="utf-8"))
    )


def refresh_data(source: Path, data_dir: Path) -> list[str]:
    """Copy into a cached data/ every scenario file that changed since it was prepared (the
    taught rows are equal, or the key would differ); returns the names copied."""
    from lm_unlearn.files import atomic_write_bytes

    new, old = sha256_tree(source), sha256_tree(data_dir)
    changed = sorted(
        name
        for name, digest in new.items()
        if old.get(name) != digest
        and not (name.endswith(".yaml") and name in old and _same_config(source / name, data_dir / name))
    )
    for name in changed:
        atomic_write_bytes(data_dir / name, (source / name).read_bytes())
    return changed


def teach_model(model: str, rows: list[dict], run_dir: Path, teach: TeachSettings, name: str) -> dict:
    """Fine-tune `model` on `rows` with the `sft` term; the result is run_dir/model."""
    from lm_unlearn.config import validate_config
    from lm_unlearn.engine import train

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    data_path = run_dir.parent / "teach" / f"{name}.jsonl"
    data_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(data_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    steps = teach.steps(len(rows))
    cfg = validate_config(
        {
            "name": name,
            "output_dir": str(run_dir.parent),
            "objective": {"sft": 1.0},
            "model": {"name": model},
            "data": {"forget": {"path": str(data_path)}, "max_length": teach.max_length},
            "train": {
                "mode": teach.mode,
                "lr": teach.lr,
                "batch_size": teach.batch_size,
                "max_steps": steps,
                "eval_every": 0,  # teaching: every record is taught, none held out
                "warmup_steps": min(10, steps // 10),
                "schedule": "linear",
                "precision": teach.precision,
                "seed": teach.seed,
                "lora": {"r": teach.lora_r, "alpha": 2 * teach.lora_r},
            },
            "save": {"merge": True},
            "evaluate": False,
        },
        f"prepare: teach {name}",
    )
    log.info("teaching %s: %d records, %d steps (%s)", name, len(rows), steps, teach.mode)
    started = time.perf_counter()
    result = train(cfg, run_dir)
    history = result.history or []
    return {
        "records": len(rows),
        "steps": result.steps,
        "wall_s": round(time.perf_counter() - started, 1),
        "final_loss": history[-1].get("loss") if history else None,
    }


def prepare(
    scenario: str,
    *,
    seed: int = 0,
    model: str = DEFAULT_MODEL,
    people: int | None = None,
    teach: TeachSettings | None = None,
    force: bool = False,
    cache_root: Path | None = None,
) -> Prepared:
    """Teach `model` the scenario (target) and its retain part (retrain), or reuse the cache.

    scenario: a scenario name (generated with `seed`, and `people` where it takes that) or a
    directory holding scenario.json. Returns the Prepared directory.
    """
    from lm_unlearn.models import cache_dir

    teach = teach or TeachSettings(seed=seed)
    root = Path(cache_root) if cache_root is not None else cache_dir() / "prepared"
    with tempfile.TemporaryDirectory(prefix="lm-unlearn-prepare-") as scratch:
        source = Path(scenario)
        if source.is_dir() and (source / "scenario.json").is_file():
            name = source.resolve().name
        elif source.is_dir() and "/" in scenario:  # a bare name falls through to the generator
            raise DataError(f"{source}: no scenario.json; make one with `unlearn data make` or `convert`")
        else:
            name = scenario
            source = _make_scenario(scenario, Path(scratch) / "data", seed, people)
        learn, retain_only = split_learn(source)
        if len(retain_only) == len(learn):
            raise DataError(
                f"{source}: no learn record is forget-side; the retrain model would be the target"
            )
        key = cache_key(model, {"target": learn, "retrain": retain_only}, teach)
        target = root / f"{name}-seed{seed}-{key[:12]}"
        if (target / "prepared.json").is_file() and not force:
            log.info("prepared %s found in the cache: %s", name, target)
            changed = refresh_data(source, target / "data")
            if changed:
                log.info("evaluation files updated in the cache: %s", ", ".join(changed))
            return Prepared(target, json.loads((target / "prepared.json").read_text()))

        info: dict[str, Any] = {
            "scenario": name,
            "seed": seed,
            "base_model": model,
            "people": people,
            "teach": asdict(teach),
            "key": key,
        }

        def fill(tmp: Path) -> None:
            shutil.copytree(source, tmp / "data", symlinks=True, ignore=_no_links)
            started = time.perf_counter()
            info["target"] = teach_model(model, learn, tmp / "target", teach, "target")
            info["retrain"] = teach_model(model, retain_only, tmp / "retrain", teach, "retrain")
            info["wall_s"] = round(time.perf_counter() - started, 1)
            atomic_write_json(tmp / "prepared.json", info)

        atomic_directory(target, fill)
        return Prepared(target, info)
