"""Importing this package registers every built-in term and recipe."""

from lm_unlearn.objectives import recipes  # noqa: F401, E402
from lm_unlearn.objectives.terms import ga, kl, mismatch, nll  # noqa: F401
