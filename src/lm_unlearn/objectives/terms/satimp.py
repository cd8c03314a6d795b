import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term(
    "satimp",
    "sum_t sg(p_t)^b1 sg(1-p_t)^b2 log p_t on forget: saturation x importance weights (Yang et al. 2025)",
)
def satimp(ctx: StepContext, beta1: float = 5.0, beta2: float = 1.0) -> torch.Tensor:
    """SatImp (Yang, Wang, Huang, Liu, Zhang & Han, "Exploring Criteria of Loss Reweighting to
    Enhance LLM Unlearning", ICML 2025, arXiv 2505.11953).

    L_satimp = (1/B) * sum_i (1/|y_i|) * sum_t w_i,t * log p_i,t,
    w_i,t = sg(p_i,t)^beta1 * sg(1 - p_i,t)^beta2,
    p_i,t = p(y_i,t | x_i, y_i,<t), sg = stop-gradient. The p^beta1 factor ("saturation")
    fades tokens already forgotten, the (1-p)^beta2 factor ("importance") spares tokens the
    model is sure of. Defaults are open-unlearning's (beta1 = 5, beta2 = 1); tokens are averaged
    per example first, where open-unlearning takes a token mean over the batch.
    """
    out = ctx.outputs("forget")
    logprob = out.token_logprob  # fp32, 0 outside the response
    p = logprob.detach().exp()
    weight = p.pow(beta1) * (1.0 - p).pow(beta2)
    per_example = (weight * logprob * out.response_mask).sum(dim=1) / out.response_length
    return per_example.mean()
