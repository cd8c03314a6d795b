"""`unlearn tune`: a hyperparameter search over a run config, judged on validation splits only.

Each trial is a run of the engine with sampled settings (lr, steps, term weights, numeric term
parameters such as NPO's beta), with validation every `train.eval_every` steps and the config's
`train.target`. A trial is scored on the step the run kept (`validation.select_step`):
  forget_gap    how far the kept step is from the forget target (0: met), see `forget_gap`
  utility_loss  1 - ROUGE-L of retain-validation answers against the original's, or, without
                generation, the retain-validation KL to the original
  objective     utility_loss + (1 + forget_gap if the target is not met else 0), minimised:
                any trial that meets the target beats every trial that does not, and among
                those that meet it the one that kept the model closest to the original wins.
The sampler is Optuna's TPE; trials are pruned (median rule) on the objective measured at each
validation step. The study lives in Optuna's RDB storage, SQLite in the tune directory by
default, so an interrupted tune resumes without repeating finished trials, and `--storage URL`
lets several processes or machines share one study.
Outputs: trials.csv, pareto.csv (trials no other trial beats on both forget_gap and
utility_loss), pareto.png, best.yaml (the config with the best trial's settings).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

import yaml

from lm_unlearn.config import RunConfig, TargetConfig, apply_overrides, validate_config
from lm_unlearn.errors import ConfigError
from lm_unlearn.files import atomic_write_text
from lm_unlearn.objectives.registry import build_objective

log = logging.getLogger(__name__)

LR_RANGE = (1e-5, 1e-3)
WEIGHT_RANGE = (0.1, 10.0)
FLOAT_PARAM_RANGES = {"beta": (0.02, 1.0), "alpha": (0.1, 10.0), "gamma": (0.0, 2.0)}


def search_space(cfg: RunConfig) -> dict[str, Any]:
    """The settings a trial samples: lr, max_steps (up to the config's), term weights, params."""
    objective = build_objective(cfg.method, cfg.objective)
    terms = {}
    for i, wt in enumerate(objective.terms):
        floats = {k: v for k, v in wt.params.items() if k in FLOAT_PARAM_RANGES and isinstance(v, float)}
        terms[wt.term.name] = {"weight": wt.weight, "tune_weight": i > 0, "params": floats}
    return {"lr": LR_RANGE, "max_steps": cfg.train.max_steps, "terms": terms}


def sample(trial, space: dict[str, Any]) -> dict[str, Any]:
    """Overrides for one trial. The first term's weight stays fixed: only ratios matter with lr."""
    steps = max(space["max_steps"], 2)
    values: dict[str, Any] = {
        "train.lr": trial.suggest_float("lr", *space["lr"], log=True),
        "train.max_steps": trial.suggest_int("max_steps", max(1, steps // 4), steps),
    }
    objective = {}
    for name, spec in space["terms"].items():
        entry: dict[str, Any] = {"weight": spec["weight"]}
        if spec["tune_weight"]:
            entry["weight"] = trial.suggest_float(f"{name}.weight", *WEIGHT_RANGE, log=True)
        for param in spec["params"]:
            low, high = FLOAT_PARAM_RANGES[param]
            entry[param] = trial.suggest_float(f"{name}.{param}", low, high)
        objective[name] = entry
    values["objective"] = objective
    return values


def forget_gap(signals: dict[str, float], target: TargetConfig, baseline: dict[str, float]) -> float:
    """0 when the forget target is met, else the largest relative shortfall among its conditions."""
    gaps = [0.0]
    if target.judge_rate_max is not None:
        gaps.append(max(0.0, signals["val_judge_rate"] - target.judge_rate_max))
    threshold = baseline.get("heldout_nll") if target.forget_nll == "heldout" else target.forget_nll
    if threshold is not None:
        gaps.append(max(0.0, (threshold - signals["val_forget_nll"]) / max(abs(threshold), 1e-9)))
    return max(gaps)


def utility_loss(signals: dict[str, float]) -> float:
    if "val_retain_similarity" in signals:
        return 1.0 - signals["val_retain_similarity"]
    return signals.get("val_retain_kl", 0.0)


def score(signals: dict[str, float], target: TargetConfig, baseline: dict[str, float]) -> dict[str, float]:
    gap, loss = forget_gap(signals, target, baseline), utility_loss(signals)
    return {"forget_gap": gap, "utility_loss": loss, "objective": loss + (1.0 + gap if gap > 0 else 0.0)}


def pareto(rows: list[dict]) -> list[dict]:
    """Rows that no other row beats on both forget_gap and utility_loss (lower is better)."""

    def beaten(a: dict) -> bool:
        return any(
            b["forget_gap"] <= a["forget_gap"]
            and b["utility_loss"] <= a["utility_loss"]
            and (b["forget_gap"], b["utility_loss"]) != (a["forget_gap"], a["utility_loss"])
            for b in rows
        )

    return sorted((r for r in rows if not beaten(r)), key=lambda r: (r["forget_gap"], r["utility_loss"]))


def trial_config(base: dict[str, Any], overrides: dict[str, Any], out: Path, number: int) -> RunConfig:
    data = yaml.safe_load(yaml.safe_dump(base))  # a deep copy of plain data
    objective = overrides.pop("objective")
    apply_overrides(data, [f"{k}={v}" for k, v in overrides.items()])
    data.update(
        objective=objective,
        method=None,
        name=f"trial-{number:04d}",
        output_dir=str(out / "trials"),
        evaluate=False,  # a trial is judged on its validation splits, never on evaluation sets
    )
    data.setdefault("save", {})["merge"] = False  # adapters only: a tune keeps no full models
    return validate_config(data, f"trial {number}")


def run_tune(base: dict[str, Any], out: Path, trials: int, storage: str | None, study_name: str) -> Path:
    """Run (or resume) the study until it holds `trials` finished trials; returns best.yaml."""
    import optuna

    from lm_unlearn.api import unlearn

    cfg = validate_config(base, "tune config")
    target = cfg.train.target
    if not target.forget_conditions():
        raise ConfigError(
            "unlearn tune needs a forget target: set train.target (forget_nll or judge_rate_max)"
        )
    if cfg.train.eval_every == 0:
        raise ConfigError("unlearn tune judges trials on validation: set train.eval_every > 0")
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=cfg.train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    space = search_space(cfg)

    def objective(trial) -> float:
        run_cfg = trial_config(base, sample(trial, space), out, trial.number)
        baseline: dict[str, float] = {}

        def report(row: dict, validator_baseline: dict[str, float]) -> None:
            baseline.update(validator_baseline)
            trial.report(score(row, target, baseline)["objective"], row["step"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = unlearn(run_cfg, Path(run_cfg.output_dir) / run_cfg.name, on_validation=report)
        selection = _selection(result.run_dir)
        values = score(selection["signals"], target, selection["baseline"])
        for key, value in (values | {"kept_step": selection["step"]}).items():
            trial.set_user_attr(key, value)
        return values["objective"]

    done = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, trials - len(done))
    log.info("study %s: %d finished trials, running %d more", study_name, len(done), remaining)
    if remaining:
        study.optimize(objective, n_trials=remaining, catch=(ConfigError,))
    return write_outputs(study, base, out)


def _selection(run_dir: Path) -> dict[str, Any]:
    from lm_unlearn.rundir import read_manifest

    return read_manifest(run_dir).selection


def write_outputs(study, base: dict[str, Any], out: Path) -> Path:
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rows = [
        {"trial": t.number, "objective": t.value, **t.user_attrs, **t.params}
        | {"state": t.state.name.lower()}
        for t in study.trials
        if t.state.is_finished()
    ]
    _write_csv(out / "trials.csv", rows)
    front = pareto([r for r in rows if r["state"] == "complete" and "forget_gap" in r])
    _write_csv(out / "pareto.csv", front)
    _plot_pareto(rows, front, out / "pareto.png")
    if not complete:
        raise ConfigError(f"no trial of study {study.study_name} finished; see {out / 'trials.csv'}")
    best = min(complete, key=lambda t: t.value)
    space = search_space(validate_config(base, "tune config"))
    best_cfg = trial_config(base, sample(optuna.trial.FixedTrial(best.params), space), out, best.number)
    data = best_cfg.model_dump(mode="json", exclude_none=True)
    data.update(name=base.get("name"), output_dir=base.get("output_dir", "runs"), evaluate=True)
    data["save"]["merge"] = base.get("save", {}).get("merge", True)
    data = {k: v for k, v in data.items() if v is not None}
    header = (
        f"# best of {len(complete)} trials (trial {best.number}, objective {best.value:.4g}); unlearn tune\n"
    )
    atomic_write_text(out / "best.yaml", header + yaml.safe_dump(data, sort_keys=False))
    return out / "best.yaml"


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _fmt(r.get(k)) for k in keys})
    atomic_write_text(path, buffer.getvalue())


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) and math.isfinite(value) else value


def _plot_pareto(rows: list[dict], front: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lm_unlearn.files import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5.5, 4))
    done = [r for r in rows if "forget_gap" in r]
    ax.scatter([r["utility_loss"] for r in done], [r["forget_gap"] for r in done], c="#999", label="trials")
    ax.plot(
        [r["utility_loss"] for r in front],
        [r["forget_gap"] for r in front],
        "o-",
        c="#c0392b",
        label="Pareto front",
    )
    ax.set_xlabel("utility loss (1 - retain answer similarity)")
    ax.set_ylabel("forget gap (0 = target met)")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
