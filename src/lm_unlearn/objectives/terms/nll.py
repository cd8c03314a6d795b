import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term(
    "retain_nll",
    "NLL on retain responses: keeps normal behaviour (GradDiff's retain term)",
    splits=("retain",),
)
def retain_nll(ctx: StepContext) -> torch.Tensor:
    """Retain-set language-modelling loss (gradient descent on normal data; Liu et al. 2022).

    L_rt = (1/B) * sum_i (1/|y_i|) * sum_t -log p(y_i,t | x_i, y_i,<t) over retain responses.
    """
    return ctx.outputs("retain").mean_nll.mean()
