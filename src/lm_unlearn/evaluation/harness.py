"""lm-evaluation-harness tasks as a utility metric (the optional `lmeval` extra).

`run_tasks` runs the configured tasks (`EvalConfig.lm_eval`) on an already-loaded model through
lm-eval's Python API, `lm_eval.simple_evaluate` with an `HFLM` around our model and tokenizer, so
nothing is loaded from the hub but what a task's own YAML names (a local task with
`dataset_path: json` and `data_files` needs no network). The scores come back flat,
{"TASK.METRIC": value}, and become `utility.lm_eval.TASK.METRIC` in eval.json (`catalog.LM_EVAL_PREFIX`).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from lm_unlearn.evaluation.config import LmEvalConfig
from lm_unlearn.models import LoadedModel

log = logging.getLogger(__name__)


def local_paths(cfg: LmEvalConfig) -> list[Path]:
    """The entries of `tasks` and `include_path` that are files or directories."""
    return [Path(p) for p in [*cfg.tasks, *cfg.include_path] if Path(p).exists()]


def task_specs(cfg: LmEvalConfig, index: dict[str, Any]) -> list[str]:
    """What lm-eval's TaskManager.load gets: names and YAML files as given, a directory as the
    names of the tasks (not groups: a group beside its tasks would run them twice) defined in it."""
    specs = []
    for entry in cfg.tasks:
        path = Path(entry)
        if not path.is_dir():
            specs.append(entry)
            continue
        root = path.resolve()
        found = sorted(
            name
            for name, e in index.items()
            if e.kind.name in ("TASK", "PY_TASK")
            and e.yaml_path
            and root in Path(e.yaml_path).resolve().parents
        )
        if not found:
            raise FileNotFoundError(f"lm_eval.tasks: {entry} holds no task YAML file (a `task:` key)")
        specs += found
    return specs


def flat_scores(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """lm-eval's `results` ({task: {"acc,none": 0.5, "alias": ...}}) as {"task.acc": 0.5}; a
    filter other than "none" is kept in the name ("exact_match_strict-match")."""
    out = {}
    for task, values in results.items():
        for key, value in values.items():
            if "," not in key or isinstance(value, bool) or not isinstance(value, int | float):
                continue  # "alias", and "N/A" stderrs
            metric, filt = key.split(",", 1)
            out[f"{task}.{metric if filt == 'none' else f'{metric}_{filt}'}"] = float(value)
    return out


@lru_cache(maxsize=2)  # the model's pass and the original's share one index
def task_manager(dirs: tuple[str, ...], defaults: bool):
    """lm-eval's index of task YAMLs: `dirs`, and with `defaults` its own tasks (thousands of
    files, about 20 s on two cores, so left out when every task is given as a path)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(dirs) or None, include_defaults=defaults)


def run_tasks(lm: LoadedModel, cfg: LmEvalConfig) -> dict[str, float]:
    """Run `cfg.tasks` on `lm`; {"TASK.METRIC": value} for every task (and group) lm-eval scores."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    # A YAML file's directory is indexed too: the groups and templates beside it resolve.
    dirs = tuple(sorted({str((p if p.is_dir() else p.parent).resolve()) for p in local_paths(cfg)}))
    manager = task_manager(dirs, not all(Path(t).exists() for t in cfg.tasks))
    # lm-eval may give the tokenizer a pad token; the evaluation's own stays as loaded.
    model = HFLM(pretrained=lm.model, tokenizer=copy.deepcopy(lm.tokenizer), batch_size=cfg.batch_size)
    result = simple_evaluate(
        model=model,
        tasks=task_specs(cfg, manager.task_index),
        task_manager=manager,
        limit=cfg.limit,
        num_fewshot=cfg.num_fewshot,
        log_samples=False,
        # An in-context unlearning run is the original behind its prompt wrapper.
        system_instruction=lm.prompt_prefix or None,
        # Leave the process's random state alone; few-shot sampling keeps lm-eval's own seed.
        random_seed=None,
        numpy_random_seed=None,
        torch_random_seed=None,
    )
    return flat_scores(result["results"])


def definition(cfg: LmEvalConfig) -> dict[str, Any]:
    """eval.json's `info.definitions.lm_eval`: what was run, with which lm-eval."""
    return {
        "lm_eval_version": metadata.version("lm_eval"),
        "tasks": cfg.tasks,
        "limit": cfg.limit,
        "num_fewshot": cfg.num_fewshot,
        "how": "lm-evaluation-harness simple_evaluate on the loaded model (HFLM), no chat template, "
        "in the model's own dtype; `utility.lm_eval.TASK.METRIC`, stderr as lm-eval reports it",
    }


def content_digest(cfg: LmEvalConfig) -> str:
    """A digest of the local task files (the directories of the YAML files given, where their data
    usually sits), so that the original's cached scores follow an edited task."""
    digest = hashlib.sha256(metadata.version("lm_eval").encode())
    for path in local_paths(cfg):
        root = path if path.is_dir() else path.parent
        for file in sorted(f for f in root.rglob("*") if f.is_file()):
            digest.update(str(file.relative_to(root)).encode() + file.read_bytes())
    return digest.hexdigest()
