import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term(
    "mismatch",
    "NLL of forget prompts paired with random normal responses (Yao et al. 2024)",
    splits=("mismatch",),
)
def mismatch(ctx: StepContext) -> torch.Tensor:
    """Random-mismatch loss of Yao, Xu & Liu, "Large Language Model Unlearning" (NeurIPS 2024).

    L_rdn = (1/B) * sum_i (1/|y_r(i)|) * sum_t -log p(y_r(i),t | x_i, y_r(i),<t),
    where x_i is a forget prompt and y_r(i) a response drawn uniformly at random from the normal
    (retain) set, independently for each example and step (the "mismatch" batch). Only the
    response tokens carry loss; the boundary is the forget prompt's, found from offsets.
    """
    return ctx.outputs("mismatch").mean_nll.mean()
