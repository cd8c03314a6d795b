"""`unlearn benchmark`: methods × scenarios × seeds on prepared targets, then the leaderboard.

For each (scenario, seed) the scenario is prepared (target + retrain, cached), each method
unlearns the target into `<out>/runs/<scenario>-<method>-seed<S>/`, and every model, the
target and the retrain model included, is evaluated the same way: original = the target,
retain model = the retrain model. A run that already holds eval.json is reused, so an
interrupted benchmark continues where it stopped. With `audit`, each method's run is then
attacked at one fixed budget (lm_unlearn.benchmark.audit), its results cached the same way.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lm_unlearn.benchmark.audit import AuditBudget, audit_run, check_attacks
from lm_unlearn.benchmark.leaderboard import row_from_eval, write_comparison, write_leaderboard
from lm_unlearn.benchmark.prepare import Prepared, TeachSettings, prepare
from lm_unlearn.config import DEFAULT_MODEL, apply_overrides, validate_config
from lm_unlearn.files import atomic_write_text
from lm_unlearn.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class GridSpec:
    """What a benchmark runs. `overrides` are `--set key=value` for every unlearning run, or
    `--set METHOD:key=value` for that method's runs only."""

    scenarios: list[str]
    methods: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    model: str = DEFAULT_MODEL
    steps: int | None = None  # None: each method's recipe budget (`method_steps`)
    stop: str = "target"  # "target": stop at the held-out forget NLL (see `run_train`); "steps": run `steps`
    eval_every: int = 2
    people: int | None = 20
    metrics: list[str] | None = None
    eval_limit: int | None = 32
    teach: TeachSettings = field(default_factory=TeachSettings)
    overrides: list[str] = field(default_factory=list)
    out: Path = Path("benchmarks/default")
    audit: list[str] = field(default_factory=list)  # attacks run on each method's run
    audit_budget: AuditBudget = field(default_factory=AuditBudget)


def eval_config(prepared: Prepared, spec: GridSpec):
    """The scenario's eval.yaml, with --metrics, and retain/unrelated capped at eval_limit."""
    from lm_unlearn.evaluation.config import EvalConfig

    data = prepared.eval_data()
    if spec.metrics:
        data["metrics"] = spec.metrics
    if spec.eval_limit:
        for role in ("retain", "unrelated"):  # the big sets; forget-side sets stay whole
            if isinstance(data.get(role), dict):
                limit = data[role].get("limit")
                data[role]["limit"] = min(limit, spec.eval_limit) if limit else spec.eval_limit
    return EvalConfig.model_validate(data)


DEFAULT_STEPS = 60


def method_steps(spec: GridSpec, method: str) -> int:
    """A run's step budget: `--steps` when given, else the recipe's own `train.max_steps` (yao's
    gentler default weights take longer: 100), else DEFAULT_STEPS."""
    from lm_unlearn.objectives.registry import recipe_train_settings

    if spec.steps is not None:
        return spec.steps
    return int(recipe_train_settings(method).get("max_steps", DEFAULT_STEPS))


def run_train(spec: GridSpec, seed: int, has_heldout: bool, method: str) -> dict[str, Any]:
    """The `train:` section of a benchmark run.

    stop "target" (the default): validate every `eval_every` steps on a split held out from the
    forget and retain data (left out of the evaluation) and stop at the first step whose held-out
    forget NLL reaches the target model's NLL on the scenario's held-out people, whom it never
    learned: "as if never trained" (TOFU, MUSE), not "as far as possible", which overshoots the
    retrain model and loses forget quality as surely as doing too little. The method's step
    budget (`method_steps`) is the cap. stop "steps" (or a scenario without held-out data):
    exactly that many steps, no validation split, so the evaluation sees every forget record.
    """
    if spec.stop not in ("target", "steps"):
        raise ValueError(f"benchmark --stop {spec.stop!r}: expected target or steps")
    train: dict[str, Any] = {"max_steps": method_steps(spec, method), "seed": seed, "eval_every": 0}
    if spec.stop == "target" and has_heldout:
        train |= {"eval_every": spec.eval_every, "target": {"forget_nll": "heldout"}}
    return train


def method_overrides(overrides: list[str], method: str) -> list[str]:
    """The `--set` overrides for one method's runs: plain `key=value` ones, then `method:key=value`
    ones for this method (without the prefix), so a method's own setting wins."""
    plain = [o for o in overrides if ":" not in o.split("=", 1)[0]]
    scoped = [o.split(":", 1) for o in overrides if ":" in o.split("=", 1)[0]]
    return plain + [rest for name, rest in scoped if name == method]


def unlearn_one(prepared: Prepared, method: str, seed: int, spec: GridSpec, run_dir: Path) -> Path:
    """Unlearn the prepared target with `method`; returns the run directory."""
    from lm_unlearn.api import unlearn
    from lm_unlearn.engine import check_data

    data: dict[str, Any] = {
        "name": run_dir.name,
        "output_dir": str(run_dir.parent),
        "method": method,
        "model": {"name": str(prepared.target)},
        "data": prepared.run_data(),
        "train": run_train(spec, seed, has_heldout="heldout" in prepared.run_data(), method=method),
        "evaluate": False,  # evaluated below with the retrain model as the reference
    }
    overrides = method_overrides(spec.overrides, method)
    cfg = validate_config(apply_overrides(data, overrides), f"benchmark run {run_dir.name}")
    check_data(cfg)
    unlearn(cfg, run_dir)
    return run_dir


def evaluate_reference(prepared: Prepared, which: str, cfg, out_dir: Path) -> Path:
    """Evaluate the target or the retrain model as if it were an unlearned model."""
    from lm_unlearn.evaluation import evaluate, load_eval_data
    from lm_unlearn.report import write_outputs

    model = prepared.target if which == "target" else prepared.retrain
    result = evaluate(
        str(model),
        load_eval_data(cfg),
        cfg,
        original=str(prepared.target),
        retain_model=str(prepared.retrain),
    )
    info = prepared.info.get(which, {})
    # Teaching cost is not unlearning cost: the reference rows have none.
    result["run_cost"] = {"teach_wall_s": info.get("wall_s"), "teach_steps": info.get("steps")}
    write_outputs(result, out_dir, f"lm-unlearn benchmark reference: {out_dir.name}")
    return RunDir(out_dir).eval


def method_run_dir(spec: GridSpec, scenario: str, method: str, seed: int) -> Path:
    return Path(spec.out) / "runs" / f"{scenario}-{method}-seed{seed}"


def method_row(prepared: Prepared, name: str, method: str, seed: int, spec: GridSpec, cfg) -> dict:
    """Unlearn and evaluate one method's run (reused when it holds eval.json), audit it when
    asked; its leaderboard row."""
    from lm_unlearn.evaluation.run import evaluate_run

    run_dir = method_run_dir(spec, name, method, seed)
    if not RunDir(run_dir).eval.is_file():
        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted earlier attempt
        log.info("unlearning %s with %s (seed %d)", name, method, seed)
        unlearn_one(prepared, method, seed, spec, run_dir)
        evaluate_run(run_dir, str(prepared.target), cfg, str(prepared.retrain))
    audit = audit_run(run_dir, spec.audit, spec.audit_budget) if spec.audit else None
    return row_from_eval(name, method, "method", seed, RunDir(run_dir).eval, audit)


def run_grid(spec: GridSpec) -> dict[str, Path]:
    """Run the grid and write the leaderboard; returns the paths written."""
    check_attacks(spec.audit)
    out = Path(spec.out)
    rows: list[dict[str, Any]] = []
    pages: dict[str, dict[str, Path]] = {}  # scenario -> label -> eval.json, first seed's runs
    started = time.perf_counter()
    for scenario in spec.scenarios:
        for seed in spec.seeds:
            teach = replace(spec.teach, seed=seed)
            prepared = prepare(scenario, seed=seed, model=spec.model, people=spec.people, teach=teach)
            name = prepared.info.get("scenario", scenario)
            cfg = eval_config(prepared, spec)
            for which in ("retrain", "target"):
                ref_dir = out / "reference" / f"{name}-{which}-seed{seed}"
                if not RunDir(ref_dir).eval.is_file():
                    log.info("evaluating the %s model of %s (seed %d)", which, name, seed)
                    evaluate_reference(prepared, which, cfg, ref_dir)
                rows.append(row_from_eval(name, which, "reference", seed, RunDir(ref_dir).eval))
            rows += [method_row(prepared, name, method, seed, spec, cfg) for method in spec.methods]
            if seed == spec.seeds[0]:
                pages[name] = {m: RunDir(method_run_dir(spec, name, m, seed)).eval for m in spec.methods}
                pages[name]["retrain (reference)"] = RunDir(
                    out / "reference" / f"{name}-retrain-seed{seed}"
                ).eval
    notes = grid_notes(spec, list(pages), time.perf_counter() - started, rows)
    paths = write_leaderboard(rows, out, "lm-unlearn benchmark", notes)
    for scenario, evals in pages.items():
        page = out / f"report-{scenario}.html"
        paths[f"report:{scenario}"] = write_comparison(evals, page, f"lm-unlearn benchmark: {scenario}")
    write_benchmark_json(spec, rows, out / "benchmark.json")
    return paths


def rows_wall_s(rows: list[dict[str, Any]]) -> float:
    """The unlearning and evaluation time the rows record (reused runs included; audits not)."""
    return sum(row.get(k) or 0.0 for row in rows for k in ("cost.train_wall_s", "cost.eval_wall_s"))


def grid_notes(spec: GridSpec, scenarios: list[str], wall_s: float, rows: list[dict[str, Any]]) -> list[str]:
    """leaderboard.md's notes: how runs stopped, the settings changed, the audit, the pages."""
    budgets = {m: method_steps(spec, m) for m in spec.methods}
    steps = (
        str(budgets[spec.methods[0]])
        if len(set(budgets.values())) == 1
        else ", ".join(f"{m} {n}" for m, n in budgets.items())
    )
    notes = [
        f"Base model `{spec.model}`; methods unlearn the target "
        + (
            f"until the held-out forget NLL reaches the held-out people's (validated every "
            f"{spec.eval_every} steps, at most {steps} steps; `kept step` is the step kept)."
            if spec.stop == "target"
            else f"for {steps} steps."
        ),
        "Every row is evaluated against the target (original) and the retrain model (taught the "
        "retain part only). The retrain row's forget quality is 1 by construction (its truth "
        "ratios tested against themselves); the target row shows where unlearning starts.",
        "Answers before and after, side by side with each run's verdict (seed "
        f"{spec.seeds[0]}): " + ", ".join(f"`report-{name}.html`" for name in scenarios) + ".",
        f"This invocation took {wall_s:.0f} s; the rows' own unlearning and evaluation, reused runs "
        f"included (audits and preparing not), {rows_wall_s(rows):.0f} s.",
    ]
    if spec.overrides:  # e.g. a method's own train.max_steps, which the first note cannot know
        sets = ", ".join(f"`{o}`" for o in spec.overrides)
        notes.insert(1, f"Settings changed with `--set` (a `METHOD:` one for that method only): {sets}.")
    if spec.audit:
        notes.insert(
            -1,
            f"Audit, the same budget for every method: {spec.audit_budget.describe(spec.audit)}.",
        )
    return notes


def write_benchmark_json(spec: GridSpec, rows: list[dict[str, Any]], path: Path) -> None:
    """The settings (teach and audit budget as their own blocks) and every row."""
    nested = ("teach", "audit_budget")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in spec.__dict__.items() if k not in nested}
    data = {"spec": settings, "teach": asdict(spec.teach), "audit_budget": asdict(spec.audit_budget)}
    atomic_write_text(path, json.dumps(data | {"rows": rows}, indent=2) + "\n")
