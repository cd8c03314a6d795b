"""Cost of a run (from its manifest.json and metrics.jsonl) and of the evaluation itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lm_unlearn.rundir import RunDir, read_history, read_manifest


def run_cost(run_dir: Path, n_params: int | None = None) -> dict[str, Any]:
    """Wall time, tokens, peak memory and estimated FLOPs of the training run in `run_dir`.

    FLOPs are estimated as 6 * N * tokens (Kaplan et al., 2020: forward 2N + backward 4N per
    token, N = parameters of the model) - an order of magnitude, not a measurement: it ignores
    attention, reference-model forwards and, for LoRA, the skipped weight gradients.
    """
    cost: dict[str, Any] = {}
    manifest = read_manifest(run_dir, missing_ok=True)
    histories = [h for h in map(read_history, _metrics_files(Path(run_dir), manifest)) if h]
    if histories:  # a procedure's phases (undo) add up
        cost["steps"] = sum(h[-1].get("step") or 0 for h in histories)
        cost["train_wall_s"] = sum(h[-1].get("elapsed_s") or 0 for h in histories)
        cost["train_tokens"] = int(sum(r.get("tokens", 0) for h in histories for r in h))
    if manifest.selection is not None:  # the step a target-stopped run kept
        cost["kept_step"] = manifest.selection.get("step")
    older = manifest.model_extra or {}  # top-level cost keys of manifests before the cost block
    for key in ("peak_memory_bytes", "peak_rss_bytes", "peak_gpu_memory_bytes", "wall_s"):
        if key in older:
            cost[f"train_{key}"] = older[key]
    if manifest.cost is not None:  # if the engine records its own cost block
        cost.update({f"train_{k}": v for k, v in manifest.cost.items()})
    elif manifest.phases:  # a procedure: the peaks of its training phases
        for phase in _phase_dirs(Path(run_dir), manifest):
            for k, v in (read_manifest(phase, missing_ok=True).cost or {}).items():
                if k.startswith("peak") and v is not None:
                    cost[f"train_{k}"] = max(v, cost.get(f"train_{k}") or 0)
    if n_params and cost.get("train_tokens"):
        cost["train_flops_estimate"] = 6 * n_params * cost["train_tokens"]
    return cost


def _phase_dirs(run_dir: Path, manifest) -> list[Path]:
    return [run_dir / p["run_dir"] for p in manifest.phases or [] if p.get("run_dir")]


def _metrics_files(run_dir: Path, manifest) -> list[Path]:
    """The run's metrics.jsonl, or, for a procedure that trains in phases (undo), each phase's."""
    own = RunDir(run_dir).metrics
    return (
        [own]
        if own.is_file() or not manifest.phases
        else [RunDir(d).metrics for d in _phase_dirs(run_dir, manifest)]
    )
