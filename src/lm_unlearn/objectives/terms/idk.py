import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term("idk", "NLL of a refusal ('I don't know.') as the answer to each forget prompt", splits=("refusal",))
def idk(ctx: StepContext) -> torch.Tensor:
    """Refusal fine-tuning, "IdkPO"/"IDK" baseline (Maini et al., "TOFU", 2024).

    L_idk = (1/B) * sum_i (1/|r_i|) * sum_t -log p(r_i,t | x_i, r_i,<t),
    where x_i is a forget prompt and r_i a refusal drawn per example and step from
    data/builtin/refusals.txt (the "refusal" batch).
    """
    return ctx.outputs("refusal").mean_nll.mean()
