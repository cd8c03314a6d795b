"""Evaluation: generation, likelihoods, metrics, judges; `evaluate` runs the suite.

The names below are imported on first use, so a training process that only needs
`evaluation.cost` does not load scikit-learn, pandas and the text metrics (about 130 MiB).
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "EvalConfig": "lm_unlearn.evaluation.config",
    "JudgeConfig": "lm_unlearn.evaluation.config",
    "load_eval_config": "lm_unlearn.evaluation.config",
    "EvalData": "lm_unlearn.evaluation.passes",
    "evaluate": "lm_unlearn.evaluation.suite",
    "load_eval_data": "lm_unlearn.evaluation.passes",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)


__all__ = sorted(_WHERE)
