import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term("wga", "sum_t sg(p_t)^b log p_t on forget: GA weighted by token confidence (Wang et al. 2025)")
def wga(ctx: StepContext, beta: float = 1.0) -> torch.Tensor:
    """Weighted Gradient Ascent (Wang, Zhou, Zhou, Shin, Han & Weinberger, "Rethinking LLM
    Unlearning Objectives: A Gradient Perspective and Go Beyond", ICLR 2025, arXiv 2502.19301).

    L_wga = (1/B) * sum_i (1/|y_i|) * sum_t sg(p_i,t)^beta * log p_i,t,
    p_i,t = p(y_i,t | x_i, y_i,<t), sg = stop-gradient. Minimising it lowers the forget
    log-probs like GA (beta = 0 is ga), but a token's push fades as its probability falls, so
    already-forgotten tokens stop dominating. As in open-unlearning's WGA, the weight is
    detached; unlike it (a token mean over the batch), tokens are averaged per example first.
    """
    out = ctx.outputs("forget")
    logprob = out.token_logprob  # fp32, 0 outside the response
    weight = logprob.detach().exp().pow(beta)
    per_example = (weight * logprob * out.response_mask).sum(dim=1) / out.response_length
    return per_example.mean()
