"""UNDO, Unlearn-Noise-Distill-on-Outputs (Lee et al., *Distillation Robustifies Unlearning*, 2025,
arXiv 2506.06278): unlearning suppresses outputs but leaves the capability in the weights;
distilling the unlearned model's outputs into a damaged copy transfers the behaviour and leaves
more of the latent capability behind, so it is harder to relearn.

Three phases, each in run_dir/phases/:
  1. unlearn/  the engine with `undo.base` (default npo+rt): the teacher, unlearn/model.
  2. student/  shrink-and-perturb noise (`shrink_perturb`) of the unlearned weights (the paper),
               or of the original's with undo.student_from=original; seeded, so redone alike.
  3. distill/  the engine again, from student/, full fine-tuning with the `distill` term (forward
               KL to the teacher's logits on forget text, and on the retain records plus
               `undo.distill_texts` texts the teacher samples: distill-retain.jsonl, undo_text.py):
               the run's model. No validation: it has no stop rule, and the unlearn phase's
               validation.json is the run's, so the evaluation leaves those records out.
run_dir/model is the distilled student; run_dir/manifest.json has one entry per phase. A resumed
run skips finished phases, resumes an interrupted training phase from its last checkpoint, and
makes the noised student again (the same weights) if it was not saved whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from lm_unlearn.config import DatasetConfig, MaskConfig, RunConfig, TargetConfig, UndoConfig
from lm_unlearn.engine import train
from lm_unlearn.files import atomic_write_json, atomic_write_text, link_tree, sha256_tree
from lm_unlearn.manifest import now
from lm_unlearn.methods.undo_text import distill_data
from lm_unlearn.models import load_model, save_model
from lm_unlearn.objectives.registry import recipe_train_settings
from lm_unlearn.rundir import MODEL, Manifest, RunDir, RunResult, read_manifest, write_manifest

FORMULA = "theta_s = (1 - alpha) * theta + alpha * beta * eps, eps ~ N(0, sigma^2) per entry"


def shrink_perturb(model: torch.nn.Module, alpha: float, beta: float, sigma: float, seed: int) -> None:
    """UNDO's noise step (Lee et al. 2025, arXiv 2506.06278), in place, on every parameter:

        theta_s = (1 - alpha) * theta + alpha * beta * eps,   eps ~ N(0, sigma^2) elementwise,

    eps drawn in fp32 on the CPU from torch.Generator().manual_seed(seed), one tensor per
    parameter in `named_parameters()` order (tied weights once), so the result depends only on
    the weights and the four numbers. alpha = 0 keeps theta; alpha = 1 is pure noise (a fresh
    initialisation when beta * sigma is the init scale).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            eps = torch.randn(p.shape, generator=generator, dtype=torch.float32) * sigma
            p.copy_(((1 - alpha) * p.detach().float().cpu() + alpha * beta * eps).to(p.dtype))


def make_student(
    source: str, target: Path, undo: UndoConfig, seed: int, revision: str | None = None
) -> dict[str, Any]:
    """Noise a copy of `source` into target/ (atomically); returns the manifest's entry."""
    loaded = load_model(source, revision=revision, dtype=torch.float32)
    sigma = undo.sigma or getattr(loaded.model.config, "initializer_range", None) or 0.02
    shrink_perturb(loaded.model, undo.alpha, undo.beta, sigma, seed)
    save_model(loaded.model, loaded.tokenizer, target)
    settings = {"alpha": undo.alpha, "beta": undo.beta, "sigma": sigma, "seed": seed}
    return {"phase": "noise", "formula": FORMULA, "from": source, **settings}


def phase_config(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy of `cfg` for one phase: no undo block, a merged full model saved at the end."""
    sub = cfg.model_copy(deep=True)
    sub.undo = None
    sub.save.merge = True
    for key, value in changes.items():
        setattr(sub, key, value)
    return sub


def unlearn_config(cfg: RunConfig, undo: UndoConfig) -> RunConfig:
    sub = phase_config(cfg, method=undo.base, objective=undo.objective)
    if undo.objective is None:  # the base recipe's set-up (rmu: mode=full), unless the user set it
        for key, value in recipe_train_settings(undo.base).items():
            if key not in cfg.train.model_fields_set:
                setattr(sub.train, key, value)
    return sub


def distill_config(
    cfg: RunConfig, undo: UndoConfig, student: Path, teacher: Path, retain: DatasetConfig | None
) -> RunConfig:
    """Full fine-tuning of the student on the distill term, on `retain` (distill-retain.jsonl)
    where given; no target, stop rule or validation (a noised student already 'forgets', and
    signals measured against it as the original would mean nothing), so the last step is kept,
    and no mask or SAM."""
    sub = phase_config(cfg, method=None, objective={"distill": {"weight": 1.0, "teacher": str(teacher)}})
    sub.model.name, sub.model.revision = str(student), None
    if retain is not None:
        sub.data.retain = retain
    t = sub.train
    t.mode, t.sam_rho, t.mask, t.target, t.eval_every = "full", 0.0, MaskConfig(), TargetConfig(), 0
    t.stop.forget_nll_above = None
    t.max_steps = undo.distill_steps or cfg.train.max_steps
    t.lr = undo.distill_lr or cfg.train.lr
    return sub


def run_phase(sub: RunConfig, sub_dir: Path, name: str, resume: bool) -> tuple[dict, list[dict]]:
    """Train one phase unless it finished before: (its manifest entry, its new metrics rows)."""
    manifest, history = read_manifest(sub_dir, missing_ok=True), []
    if manifest.status != "finished":
        started = RunDir(sub_dir).manifest.is_file()
        history = [{"phase": name, **row} for row in train(sub, sub_dir, resume=resume and started).history]
        manifest = read_manifest(sub_dir)
    entry = {
        "phase": name,
        "run_dir": str(Path("phases") / sub_dir.name),
        "started_from": sub.model.name,
        "objective": manifest.objective,
        "steps": manifest.steps,
        "stop_reason": manifest.stop_reason,
        "final": manifest.final,
        "model_sha256": (manifest.outputs or {}).get("model", {}).get("sha256"),
    }
    return entry, history


def noise_phase(cfg: RunConfig, undo: UndoConfig, teacher: Path, student: Path) -> dict[str, Any]:
    """The noised student at `student` (made again unless it and its record are both there)."""
    record = student.with_name("noise.json")
    if (student / "config.json").is_file() and record.is_file():
        return json.loads(record.read_text())
    seed = cfg.train.seed if undo.seed is None else undo.seed
    if undo.student_from == "unlearned":
        entry = make_student(str(teacher), student, undo, seed)
        entry["from"] = str(Path("phases") / teacher.parent.name / MODEL)
    else:
        entry = make_student(cfg.model.name, student, undo, seed, cfg.model.revision)
    entry["student_from"] = undo.student_from
    entry["model_sha256"] = sha256_tree(student)
    atomic_write_json(record, entry)
    return entry


def open_manifest(cfg: RunConfig, run_dir: Path, resume: bool) -> Manifest:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RunDir(run_dir).config, yaml.safe_dump(cfg.model_dump(mode="json")))
    manifest = read_manifest(run_dir, missing_ok=True) if resume else Manifest()
    if manifest.status is None:
        manifest = Manifest(tool="lm-unlearn", kind="undo", status="running", started=now())
        manifest.config = cfg.model_dump(mode="json")
    else:
        manifest.resumed_at = [*(manifest.resumed_at or []), {"time": now()}]
    write_manifest(run_dir, manifest)
    return manifest


def run_undo(cfg: RunConfig, run_dir: Path, resume: bool = False) -> RunResult:
    """The procedure (`recipe("undo", ..., procedure="undo")`): unlearn, noise, distil."""
    undo, phases = cfg.undo or UndoConfig(), run_dir / "phases"
    manifest = open_manifest(cfg, run_dir, resume)
    first, history = run_phase(unlearn_config(cfg, undo), phases / "unlearn", "unlearn", resume)
    teacher, student = phases / "unlearn" / MODEL, phases / "student"
    noise = noise_phase(cfg, undo, teacher, student)
    data = distill_data(cfg, undo, teacher, phases)
    retain = DatasetConfig(path=str(run_dir / data["path"])) if data else None
    sub = distill_config(cfg, undo, student, teacher, retain)
    last, more = run_phase(sub, phases / "distill", "distill", resume)
    link_tree(phases / "distill" / MODEL, RunDir(run_dir).model)
    held = RunDir(phases / "unlearn").validation
    if held.is_file():
        atomic_write_text(RunDir(run_dir).validation, held.read_text())
    unlearned = read_manifest(phases / "unlearn")
    steps = first["steps"] + last["steps"]
    manifest.update(
        {
            "status": "finished",
            "finished": now(),
            "source_model": unlearned.source_model,
            "data": unlearned.data,
            "phases": [first, noise, *([data] if data else []), last],
            "steps": steps,
            "stop_reason": f"undo: unlearned {first['steps']} steps, distilled {last['steps']}",
            "final": last["final"],
            "outputs": {"model": {"path": MODEL, "sha256": sha256_tree(RunDir(run_dir).model)}},
        }
    )
    write_manifest(run_dir, manifest)
    return RunResult(run_dir, steps, manifest.stop_reason, history + more)
