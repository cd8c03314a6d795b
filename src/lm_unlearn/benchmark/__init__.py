"""Prepared scenarios (taught target + retrain models) and the methods × scenarios benchmark.

`prepare()` lives in lm_unlearn.benchmark.prepare; it is not re-exported, so that the module
stays importable under its own name.
"""

from lm_unlearn.benchmark.grid import GridSpec, run_grid
from lm_unlearn.benchmark.prepare import Prepared, TeachSettings, split_learn

__all__ = ["GridSpec", "Prepared", "TeachSettings", "run_grid", "split_learn"]
