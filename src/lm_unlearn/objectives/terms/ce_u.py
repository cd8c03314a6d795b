import torch
import torch.nn.functional as F

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


def ce_u_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N] CE(q, softmax(z)) per position, q = softmax(sg(z) with z_y set to -inf), in fp32."""
    logits = logits.float()
    suppressed = logits.detach().scatter(-1, targets.unsqueeze(-1), float("-inf"))
    return F.cross_entropy(logits, suppressed.softmax(dim=-1), reduction="none")


@term(
    "ce_u",
    "CE(softmax(z without the true token), softmax(z)) on forget responses (Yang 2025, CE-U)",
)
def ce_u(ctx: StepContext, skip_first: int = 1) -> torch.Tensor:
    """Cross-Entropy Unlearning (Yang, "CE-U: Cross Entropy Unlearning", arXiv 2503.01224, 2025).

    L = (1/B) * sum_i (1/|T_i|) * sum_{t in T_i} -sum_v q_i,t(v) log softmax(z_i,t)(v),
    q_i,t = softmax(sg(z_i,t) with the true token's logit set to -inf),
    z_i,t the logits predicting response token y_i,t, sg = stop-gradient. The target is the
    model's own distribution with the true token removed: the gradient lowers the true token
    and leaves the rest in proportion, and it stays bounded (unlike GA's). T_i leaves out the
    first `skip_first` response tokens, the paper's footnoted trick (open-unlearning's default
    1); examples with no token left are left out of the mean.
    """
    out = ctx.outputs("forget")
    per_token = ce_u_loss(out.response_logits, out.response_targets)
    rank = out.response_mask.cumsum(dim=1)[out.response_mask]  # 1 for each example's first token
    return out.per_example_mean(per_token, keep=rank > skip_first)
