import torch
import torch.nn.functional as F

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


def npo_loss(logprob: torch.Tensor, ref_logprob: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean over examples of -(2/beta) * log sigmoid(-beta * (logprob - ref_logprob))."""
    return (-(2.0 / beta) * F.logsigmoid(-beta * (logprob - ref_logprob))).mean()


@term(
    "npo",
    "-(2/b) log sigmoid(-b (log pi(y|x) - log pi_ref(y|x))) on forget (Zhang et al. 2024)",
    needs_reference=True,
)
def npo(ctx: StepContext, beta: float = 0.1) -> torch.Tensor:
    """Negative Preference Optimization (Zhang, Lin, Bai & Mei, "Negative Preference
    Optimization: From Catastrophic Collapse to Effective Unlearning", COLM 2024).

    L_npo = (1/B) * sum_i -(2/beta) * log sigmoid(-beta * (log pi(y_i|x_i) - log pi_ref(y_i|x_i))),
    with sequence log-probs summed over response tokens. dL/d log pi = 2 * sigmoid(beta * r):
    1 at the start (r = 0, so NPO begins as gradient ascent on the summed NLL) and falling
    towards 0 as the forget answers become unlikely, which slows the collapse GA suffers.
    """
    current = ctx.outputs("forget").seq_logprob
    reference = ctx.reference("forget").seq_logprob
    return npo_loss(current, reference, beta)
