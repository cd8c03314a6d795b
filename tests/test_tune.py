"""`unlearn tune`: a short study on the tiny model, its outputs, and resuming it."""

import csv

import optuna
import yaml
from support.tiny import tiny_run_config

from lm_unlearn.config import TargetConfig
from lm_unlearn.tune import pareto, run_tune, score

SETTINGS = {
    "method": "npo+kl",
    "train.max_steps": 4,
    "train.eval_every": 2,
    "train.validation.forget": 1,
    "train.validation.retain": 2,
    "train.validation.generate": False,
    "train.target.forget_nll": 6.5,
}


def base_config(tmp_path, model_dir) -> dict:
    return tiny_run_config(tmp_path, model_dir, **SETTINGS).model_dump(mode="json")


def test_a_three_trial_tune_writes_best_yaml_and_a_pareto_plot_and_resumes(tmp_path, tiny_model_dir):
    base, out = base_config(tmp_path, tiny_model_dir), tmp_path / "tune"
    best = run_tune(base, out, trials=3, storage=None, study_name="t")
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    chosen = yaml.safe_load(best.read_text())
    assert set(chosen["objective"]) == {"npo", "kl"} and chosen.get("method") is None
    assert chosen["evaluate"] is True and chosen["train"]["target"] == {"forget_nll": 6.5}
    assert 1e-5 <= chosen["train"]["lr"] <= 1e-3
    # Resuming asks for 4 finished trials: one more runs, the first three are not repeated.
    run_tune(base, out, trials=4, storage=None, study_name="t")
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]


def test_score_prefers_any_trial_that_meets_the_target():
    target = TargetConfig(judge_rate_max=0.1)
    met = score({"val_judge_rate": 0.0, "val_retain_similarity": 0.2}, target, {})
    missed = score({"val_judge_rate": 0.25, "val_retain_similarity": 1.0}, target, {})
    assert met == {"forget_gap": 0.0, "utility_loss": 0.8, "objective": 0.8}
    assert missed["forget_gap"] == 0.15 and missed["objective"] == 1.15
    nll = score(
        {"val_forget_nll": 3.0, "val_retain_kl": 0.5},
        TargetConfig(forget_nll="heldout"),
        {"heldout_nll": 4.0},
    )
    assert nll["forget_gap"] == 0.25 and nll["utility_loss"] == 0.5


def test_pareto_keeps_the_rows_no_other_row_beats_on_both():
    rows = [
        {"trial": 0, "forget_gap": 0.0, "utility_loss": 0.5},
        {"trial": 1, "forget_gap": 0.2, "utility_loss": 0.1},
        {"trial": 2, "forget_gap": 0.3, "utility_loss": 0.4},  # beaten by trial 1
        {"trial": 3, "forget_gap": 0.0, "utility_loss": 0.6},  # beaten by trial 0
    ]
    assert [r["trial"] for r in pareto(rows)] == [0, 1]
