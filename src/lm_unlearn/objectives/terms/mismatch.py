from typing import Annotated

import torch
from pydantic import Field

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term(
    "mismatch",
    "NLL of forget prompts paired with k random normal responses each (Yao et al. 2024)",
    splits=("mismatch",),
    draws=lambda k=5, **_: k,
)
def mismatch(ctx: StepContext, k: Annotated[int, Field(ge=1)] = 5) -> torch.Tensor:
    """Random-mismatch loss of Yao, Xu & Liu, "Large Language Model Unlearning" (NeurIPS 2024).

    L_rdn = (1/B) * sum_i (1/k) * sum_j (1/|y_ij|) * sum_t -log p(y_ij,t | x_i, y_ij,<t),
    where x_i is a forget prompt and y_i1..y_ik are responses drawn uniformly at random from the
    normal (retain) set, independently for each example and step (the "mismatch" batch holds the
    k pairs of each prompt in a row). k = 5 is the authors' code (`get_rand_ans_loss`, K=5), the
    set Y_rdn the paper averages over. Only the response tokens carry loss; the boundary is the
    forget prompt's, found from offsets. The authors draw the k answers without replacement and
    share them across the batch; here each prompt draws its own, with replacement.
    """
    return ctx.outputs("mismatch").mean_nll.view(-1, k).mean(dim=1).mean()
