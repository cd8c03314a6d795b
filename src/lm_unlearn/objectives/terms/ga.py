import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term("ga", "gradient ascent on forget responses: -mean NLL (Jang et al. 2023; Yao et al. 2024)")
def ga(ctx: StepContext) -> torch.Tensor:
    """Gradient ascent on the forget set (Jang et al., ACL 2023; Yao et al., NeurIPS 2024).

    L_ga = -(1/B) * sum_i (1/|y_i|) * sum_t -log p(y_i,t | x_i, y_i,<t),
    the negated per-example mean token NLL over response tokens, averaged over the batch
    (Yao et al.'s reference code averages per example first, so long answers do not dominate).
    Minimising it raises the forget NLL.
    """
    return -ctx.outputs("forget").mean_nll.mean()
