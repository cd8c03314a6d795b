"""Loss terms (one small file each, under terms/) and named recipes."""

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.registry import RECIPES, TERMS, Objective, build_objective

__all__ = ["RECIPES", "TERMS", "Objective", "Outputs", "StepContext", "build_objective"]
