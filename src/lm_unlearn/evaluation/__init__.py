"""Evaluation: generation, likelihoods, metrics, judges; `evaluate` runs the suite."""

from lm_unlearn.evaluation.config import EvalConfig, JudgeConfig, load_eval_config
from lm_unlearn.evaluation.suite import EvalData, evaluate, load_eval_data

__all__ = ["EvalConfig", "EvalData", "JudgeConfig", "evaluate", "load_eval_config", "load_eval_data"]
