import torch
import torch.nn.functional as F

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


def dpo_loss(
    chosen: torch.Tensor,
    chosen_ref: torch.Tensor,
    rejected: torch.Tensor,
    rejected_ref: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Mean of -log sigmoid(beta * ((chosen - chosen_ref) - (rejected - rejected_ref)))."""
    margin = (chosen - chosen_ref) - (rejected - rejected_ref)
    return -F.logsigmoid(beta * margin).mean()


@term(
    "dpo",
    "DPO preferring a refusal over the forget answer (Rafailov et al. 2023; Maini et al. 2024)",
    splits=("forget", "refusal"),
    needs_reference=True,
)
def dpo(ctx: StepContext, beta: float = 0.1) -> torch.Tensor:
    """Direct Preference Optimization (Rafailov et al., NeurIPS 2023) used for unlearning as in
    TOFU (Maini et al., 2024): the refusal r_i is preferred, the forget answer y_i rejected.

    L = (1/B) * sum_i -log sigmoid(beta * [(log pi(r_i|x_i) - log pi_ref(r_i|x_i))
                                          - (log pi(y_i|x_i) - log pi_ref(y_i|x_i))]),
    sequence log-probs summed over response tokens; the refusal batch pairs the same forget
    prompts, in the same order, as the forget batch.
    """
    chosen, rejected = ctx.outputs("refusal"), ctx.outputs("forget")
    chosen_ref, rejected_ref = ctx.reference("refusal"), ctx.reference("forget")
    return dpo_loss(
        chosen.seq_logprob, chosen_ref.seq_logprob, rejected.seq_logprob, rejected_ref.seq_logprob, beta
    )
