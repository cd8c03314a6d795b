"""Validation during training: held-out splits, signals, targets, and the kept step."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.tiny import FORGET_ROWS, RETAIN_ROWS, tiny_run_config

from lm_unlearn.config import TargetConfig
from lm_unlearn.data import Record
from lm_unlearn.engine import read_history, train
from lm_unlearn.errors import ConfigError
from lm_unlearn.evaluation.config import EvalConfig
from lm_unlearn.evaluation.passes import load_eval_data
from lm_unlearn.validation import hold_out, select_step

SPLITS = {
    "train.validation.forget": 1,
    "train.validation.retain": 2,
    "train.validation.max_new_tokens": 4,
    "train.schedule": "constant",  # a step's weights must not depend on max_steps
    "method": "graddiff",
}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def run(tmp_path, model_dir, name, **settings):
    cfg = tiny_run_config(tmp_path / name, model_dir, **(SPLITS | settings))
    result = train(cfg, Path(cfg.output_dir) / "tiny")
    return result, read_history(result.run_dir / "metrics.jsonl")


def test_hold_out_is_seeded_and_refuses_a_split_as_large_as_the_data():
    records = [Record(f"q{i}", f"a{i}", f"r{i}") for i in range(12)]
    train_a, val_a = hold_out(records, None, "forget", seed=0)
    train_b, val_b = hold_out(records, None, "forget", seed=0)
    assert val_a == val_b and len(val_a) == 2 and len(train_a) == 10  # 12 // 6
    assert not set(r.source for r in val_a) & set(r.source for r in train_a)
    assert hold_out(records, None, "forget", seed=1)[1] != val_a or len(records) < 3
    with pytest.raises(ConfigError, match="train.validation.forget=12 would leave no forget record"):
        hold_out(records, 12, "forget", seed=0)


def test_validation_signals_are_logged_and_the_splits_are_not_trained_on(tmp_path, tiny_model_dir):
    result, rows = run(tmp_path, tiny_model_dir, "a", **{"train.eval_every": 2})
    validated = [r["step"] for r in rows if "val_forget_nll" in r]
    assert validated == [2, 4]
    for key in ("val_forget_nll", "val_retain_nll", "val_retain_kl", "val_retain_similarity"):
        assert all(key in r for r in rows if r["step"] in validated)
    assert rows[-1]["val_retain_kl"] > 0  # graddiff moved the model away from the original
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["data"]["forget"]["records"] == len(FORGET_ROWS) - 1
    assert manifest["data"]["retain"]["records"] == len(RETAIN_ROWS) - 2
    assert manifest["validation"]["forget"]["records"] == 1
    assert manifest["selection"]["rule"] == "last"  # no target: the last step is kept
    held = json.loads((result.run_dir / "validation.json").read_text())
    assert len(held["forget"]) == 1 and len(held["retain"]) == 2


def test_validation_splits_never_overlap_the_evaluation_sets(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **(SPLITS | {"train.max_steps": 1}))
    run_dir = train(cfg, Path(cfg.output_dir) / "tiny").run_dir
    held = json.loads((run_dir / "validation.json").read_text())
    eval_cfg = EvalConfig(forget=cfg.data.forget, retain=cfg.data.retain)
    data = load_eval_data(eval_cfg, held)
    assert len(data.sets["forget"]) == len(FORGET_ROWS) - 1
    assert len(data.sets["retain"]) == len(RETAIN_ROWS) - 2
    val_prompts = {r["prompt"] for r in FORGET_ROWS + RETAIN_ROWS} - {
        r.prompt for role in ("forget", "retain") for r in data.sets[role]
    }
    assert len(val_prompts) == 3  # exactly the held-out records are gone, nothing else


def test_a_reachable_target_stops_early_and_saves_the_chosen_step(tmp_path, tiny_model_dir):
    common = {"train.eval_every": 1, "train.lr": 0.05, "train.max_steps": 12}
    _, free = run(tmp_path, tiny_model_dir, "free", **common)
    start = free[0]["val_forget_nll"]
    reach = next(r for r in free if r["val_forget_nll"] > start + 0.05)  # a level reached mid-way
    assert reach["step"] < 12
    target = {"train.target.forget_nll": round(start + 0.05, 6)}
    result, rows = run(tmp_path, tiny_model_dir, "target", **common, **target)
    assert result.steps == reach["step"] < 12
    assert "met the forget target" in result.stop_reason
    short, _ = run(tmp_path, tiny_model_dir, "short", **common | {"train.max_steps": reach["step"]})
    a, b = weights(result.run_dir), weights(short.run_dir)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_a_crossed_utility_bound_stops_and_restores_the_best_step(tmp_path, tiny_model_dir):
    common = {"train.eval_every": 1, "train.lr": 0.05, "train.max_steps": 6}
    _, free = run(tmp_path, tiny_model_dir, "free", **common)
    kl = [r["val_retain_kl"] for r in free]
    assert kl[0] < kl[1], "the bound needs KL to grow from step 1 to step 2"
    bound = {"train.target.retain_kl_max": (kl[0] + kl[1]) / 2, "train.target.forget_nll": 1e9}
    result, rows = run(tmp_path, tiny_model_dir, "bound", **common, **bound)
    assert result.steps == 2 and "within the utility bounds" in result.stop_reason
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["selection"]["step"] == 1
    assert manifest["selection"]["rule"] == "most_forgotten_within_bounds"
    one, _ = run(tmp_path, tiny_model_dir, "one", **common | {"train.max_steps": 1})
    a, b = weights(result.run_dir), weights(one.run_dir)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_select_step_follows_its_documented_rule():
    target = TargetConfig(judge_rate_max=0.1, retain_similarity_min=0.7)

    def row(step, judge, sim, nll=1.0):
        return {"step": step, "val_judge_rate": judge, "val_retain_similarity": sim, "val_forget_nll": nll}

    rows = [row(0, 1.0, 1.0), row(5, 0.5, 0.9), row(10, 0.25, 0.8), row(15, 0.0, 0.75)]
    choice = select_step(rows, target, {})
    assert (choice.step, choice.rule, choice.stop) == (15, "first_met", True)
    choice = select_step(rows[:3], target, {})  # not met yet: the most forgotten within bounds, go on
    assert (choice.step, choice.rule, choice.stop) == (10, "most_forgotten_within_bounds", False)
    choice = select_step(rows[:3] + [row(15, 0.0, 0.6)], target, {})  # met, but the bound crossed
    assert (choice.step, choice.rule, choice.stop) == (10, "most_forgotten_within_bounds", True)
    choice = select_step([row(5, 0.5, 0.5), row(10, 0.0, 0.4)], target, {})
    assert (choice.step, choice.rule, choice.stop) == (5, "least_changed", True)
    assert select_step(rows, TargetConfig(), {}).rule == "last"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train.target.judge_rate_max": 0.1}, "judge_rate_max cannot be computed"),
        ({"train.target.forget_nll": "heldout"}, "needs data.heldout"),
        ({"train.target.forget_nll": 3.0, "train.eval_every": 0}, "needs validation"),
        ({"train.validation.retain": 5}, "would leave no retain record"),
    ],
)
def test_an_impossible_target_or_split_is_a_clear_error(tmp_path, tiny_model_dir, settings, message):
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **(SPLITS | settings))
    with pytest.raises(ConfigError, match=message):
        train(cfg, Path(cfg.output_dir) / "tiny")
