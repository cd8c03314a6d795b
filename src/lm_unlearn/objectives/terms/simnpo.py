import torch
import torch.nn.functional as F

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term("simnpo", "-(2/b) log sigmoid(-(b/|y|) log pi(y|x) - delta): NPO without a reference (Fan et al. 2024)")
def simnpo(ctx: StepContext, beta: float = 2.5, delta: float = 0.0) -> torch.Tensor:
    """SimNPO (Fan, Liu, Lin, Jia, Zhang, Mei & Liu, "Simplicity Prevails: Rethinking Negative
    Preference Optimization for LLM Unlearning", 2024).

    L = (1/B) * sum_i -(2/beta) * log sigmoid(-(beta/|y_i|) * log pi(y_i|x_i) - delta),
    the NPO loss with the reference replaced by length normalisation and a reward margin delta
    (the paper's gamma). No reference model is needed.
    """
    out = ctx.outputs("forget")
    normalised = out.seq_logprob / out.response_length
    return (-(2.0 / beta) * F.logsigmoid(-beta * normalised - delta)).mean()
