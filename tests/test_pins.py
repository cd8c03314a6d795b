"""Behaviour pins: what a refactor must not change (issue 13, "How to do it safely").

For a handful of recipes, a 3-step tiny-model run's losses per step and its manifest's keys, and
a tiny evaluation's eval.json (keys and metric values), are compared with JSON files under
tests/pins/. The pins were generated from the code before the redesign; regenerate them only for
a change of behaviour that is meant, and say so in the commit:

    LM_UNLEARN_WRITE_PINS=1 pytest tests/test_pins.py
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from support.evaluation import small_config
from support.tiny import tiny_run_config

from lm_unlearn.engine import train

PINS = Path(__file__).parent / "pins"
WRITE = os.environ.get("LM_UNLEARN_WRITE_PINS") == "1"
RECIPES = ["yao", "npo", "graddiff", "simnpo", "idk", "rmu"]
VOLATILE = {"elapsed_s"}  # wall-clock figures differ between machines and runs
# fp32 kernels sum in a different order on different CPUs (AVX2 against AVX-512/AMX): the pins,
# written on an AVX2 machine, differ by up to 3.9e-5 relative on an AMX machine (yao's step-1 KL,
# 2026-12-01). 1e-3 leaves room for that and still catches any change to a formula or a mask.
REL, ABS = 1e-3, 1e-8


def key_paths(value: object, prefix: str = "", depth: int = 2) -> list[str]:
    """Dotted keys of nested dicts down to `depth` levels; file-hash maps and version maps are
    leaves (their keys name files and packages, not the manifest's shape)."""
    if not isinstance(value, dict) or depth == 0:
        return []
    paths = []
    for key, inner in value.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if key not in {"sha256", "versions", "config"}:
            paths += key_paths(inner, path + ".", depth - 1)
    return sorted(paths)


def check_pin(name: str, found: dict) -> None:
    path = PINS / f"{name}.json"
    if WRITE:
        PINS.mkdir(exist_ok=True)
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        return
    pinned = json.loads(path.read_text())
    assert_same(found, pinned, name)


def assert_same(found: object, pinned: object, where: str) -> None:
    """Equal structure and values; floats within rel REL (plain floats, not nested approx)."""
    if isinstance(pinned, dict):
        assert isinstance(found, dict), f"{where}: expected a mapping, found {found!r}"
        assert sorted(found) == sorted(pinned), f"{where}: keys differ"
        for key in pinned:
            assert_same(found[key], pinned[key], f"{where}.{key}")
    elif isinstance(pinned, list):
        assert isinstance(found, list) and len(found) == len(pinned), f"{where}: lengths differ"
        for i, (f, p) in enumerate(zip(found, pinned)):
            assert_same(f, p, f"{where}[{i}]")
    elif isinstance(pinned, float) or (isinstance(found, float) and isinstance(pinned, int)):
        assert isinstance(found, int | float), f"{where}: {found!r} is not a number"
        if math.isnan(pinned):
            assert math.isnan(found), f"{where}: {found} is not NaN"
        else:
            assert math.isclose(found, pinned, rel_tol=REL, abs_tol=ABS), f"{where}: {found} != {pinned}"
    else:
        assert found == pinned, f"{where}: {found!r} != {pinned!r}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """The recipes' 3-step runs, trained once for this module."""
    root = tmp_path_factory.mktemp("pins")
    done = {}
    for method in RECIPES:
        settings = {"train.max_steps": 3, "train.eval_every": 0, "method": method}
        cfg = tiny_run_config(root / method, tiny_model_dir, **settings)
        done[method] = train(cfg, Path(cfg.output_dir) / "tiny").run_dir
    return done


@pytest.mark.parametrize("method", RECIPES)
def test_a_recipes_losses_and_manifest_keys_are_unchanged(runs, method):
    run_dir = runs[method]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [{k: v for k, v in json.loads(line).items() if k not in VOLATILE} for line in lines]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    check_pin(f"run_{method}", {"metrics": rows, "manifest_keys": key_paths(manifest)})


def test_a_tiny_evaluations_eval_json_is_unchanged(runs):
    from lm_unlearn.evaluation.run import evaluate_run

    run_dir = runs["graddiff"]
    evaluate_run(run_dir, cfg=small_config(limit=4))
    result = json.loads((run_dir / "eval.json").read_text())
    found = {
        "keys": key_paths(result),
        "metrics": result["metrics"],  # model, original: every metric's value
    }
    check_pin("eval", found)
