"""Importing this package registers every built-in term and recipe."""

from lm_unlearn.objectives import recipes  # noqa: F401, E402
from lm_unlearn.objectives.terms import (  # noqa: F401
    altpo,
    ce_u,
    distill,
    dpo,
    ga,
    gru,
    idk,
    kl,
    mismatch,
    nll,
    npo,
    pdu,
    rmu,
    satimp,
    sft,
    simnpo,
    task_vector,
    undial,
    wga,
    whp,
)
