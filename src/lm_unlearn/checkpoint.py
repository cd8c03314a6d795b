"""Resumable checkpoints in safetensors + JSON (no pickles), written atomically.

Layout: checkpoints/step-000040/{trainable.safetensors, optimizer.safetensors, state.json}, and
terms.safetensors when a term keeps tensors (gru's average retain gradient).
A directory only gets its final name once every file in it is complete, so an interrupted
save leaves a `.tmp-*` directory that `latest_checkpoint` ignores.
Under FSDP the parameters and optimizer moments are sharded (DTensors): every rank gathers the
full tensors for a save (only the main one writes), and each rank keeps its own shard on load,
so a checkpoint has one layout whatever the number of processes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.distributed.tensor import DTensor, distribute_tensor

from lm_unlearn.errors import UnlearnError
from lm_unlearn.files import atomic_directory
from lm_unlearn.rundir import RunDir

_STEP_DIR = re.compile(r"^step-(\d+)$")


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on the CPU (a sharded one gathered: a collective, so on every rank)."""
    t = t.detach()
    return (t.full_tensor() if isinstance(t, DTensor) else t).to("cpu").contiguous()


def _like(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A saved whole tensor as `param` holds it: this rank's shard of a sharded parameter."""
    if isinstance(param, DTensor) and not isinstance(value, DTensor) and value.shape == param.shape:
        # Every rank read the same file, so each takes its own chunk without communicating.
        return distribute_tensor(
            value.to(param.device), param.device_mesh, param.placements, src_data_rank=None
        )
    return value


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: _full(p) for name, p in model.named_parameters() if p.requires_grad}


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (safetensors) and the rest (JSON)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in state_dict["state"].items():
        scalars[str(pid)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = _full(value)
            else:
                scalars[str(pid)][key] = value
    return tensors, {"state": scalars, "param_groups": state_dict["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in meta["state"].items()}
    params = [p for group in optimizer.param_groups for p in group["params"]]  # state_dict's ids
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = _like(value, params[int(pid)])
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def term_state(terms: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """Split the objective's term state into JSON values and tensors: a list of tensors (one per
    trainable parameter, None for none) under terms[name][key] becomes "name.key.i" entries."""
    scalars: dict[str, dict[str, Any]] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, entries in terms.items():
        scalars[name] = {}
        for key, value in entries.items():
            if isinstance(value, list):
                for i, t in enumerate(value):
                    if t is not None:
                        tensors[f"{name}.{key}.{i}"] = t.detach().to("cpu").contiguous()
                scalars[name][key] = {"tensors": len(value)}
            else:
                scalars[name][key] = value
    return scalars, tensors


def restore_term_state(scalars: dict[str, dict[str, Any]], tensors: dict[str, torch.Tensor]) -> dict:
    """The inverse of term_state (tensors stay on the CPU until a term moves them)."""
    terms: dict[str, dict[str, Any]] = {}
    for name, entries in scalars.items():
        terms[name] = {}
        for key, value in entries.items():
            if isinstance(value, dict) and "tensors" in value:
                value = [tensors.get(f"{name}.{key}.{i}") for i in range(value["tensors"])]
            terms[name][key] = value
    return terms


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    keep: int = 1,
    terms: dict[str, dict[str, Any]] | None = None,
    write: bool = True,
) -> Path | None:
    """terms: the objective's per-term state (Objective.state, e.g. pdu's dual variable).
    write=False: only take part in gathering a sharded model's tensors (FSDP's other ranks)."""
    weights = trainable_state(model)
    opt_tensors, opt_meta = optimizer_state(optimizer)
    if not write:
        return None
    term_scalars, term_tensors = term_state(terms or {})

    def fill(tmp: Path) -> None:
        save_file(weights, str(tmp / "trainable.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        if term_tensors:
            save_file(term_tensors, str(tmp / "terms.safetensors"))
        state = {"step": step, "optimizer": opt_meta, "scheduler": scheduler.state_dict()}
        state["terms"] = term_scalars
        (tmp / "state.json").write_text(json.dumps(state, indent=1))

    root = RunDir(run_dir).checkpoints
    path = atomic_directory(root / f"step-{step:06d}", fill)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = RunDir(run_dir).checkpoints
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def check_weights(path: Path, weights: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    """The checkpoint holds exactly the model's trainable parameters, each with its exact shape
    (copy_ would broadcast a smaller tensor, and a frozen parameter must not change)."""
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    extra, missing = sorted(set(weights) - set(trainable)), sorted(set(trainable) - set(weights))
    shapes = sorted(n for n in set(weights) & set(trainable) if weights[n].shape != trainable[n].shape)
    problems = [
        f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
        for what, names in (
            ("not trainable parameters of this model", extra),
            ("missing trainable parameters", missing),
            ("other shapes than the model's", shapes),
        )
        if names
    ]
    if problems:
        raise UnlearnError(
            f"{path / 'trainable.safetensors'} does not fit this run's model ({'; '.join(problems)}); "
            "was the run's config changed? Restore it, or delete the checkpoint to start again"
        )


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer, scheduler, terms: dict | None = None
) -> int:
    """Restore trainable weights, optimizer, scheduler (and into `terms`, the objective's term
    state); return the step it was taken at."""
    state = json.loads((path / "state.json").read_text())
    weights = load_file(str(path / "trainable.safetensors"))
    check_weights(path, weights, model)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(_like(value, params[name]))
    restore_optimizer(optimizer, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if terms is not None:
        tensors = load_file(str(path / "terms.safetensors")) if (path / "terms.safetensors").is_file() else {}
        terms.update(restore_term_state(state.get("terms", {}), tensors))
    return int(state["step"])
