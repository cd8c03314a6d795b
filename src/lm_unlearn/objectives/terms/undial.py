import torch
import torch.nn.functional as F

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


def adjusted_targets(reference_logits: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    """log softmax(z_ref - beta * onehot(y)): the original's logits with the true token lowered.

    reference_logits [B, T-1, V] at the positions predicting labels [B, T-1] (IGNORE allowed).
    """
    onehot = F.one_hot(labels.clamp(min=0), reference_logits.shape[-1]).to(torch.float32)
    return torch.log_softmax(reference_logits.float() - beta * onehot, dim=-1)


@term(
    "undial",
    "KL(softmax(z_orig - b*onehot(y)) || p) on forget responses: self-distillation (Dong et al. 2024)",
    needs_reference=True,
    full_logits=True,
)
def undial(ctx: StepContext, beta: float = 10.0) -> torch.Tensor:
    """UNDIAL: self-distillation with adjusted logits (Dong, Lin, Belkin, Huerta & Vulić,
    "UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning in LLMs", 2024).

    L = (1/B) * sum_i (1/|y_i|) * sum_{t in response} KL(q_i,t || p(. | x_i, y_i,<t)),
    q_i,t = softmax(z_orig(. | x_i, y_i,<t) - beta * onehot(y_i,t)).
    The paper minimises the cross-entropy to q; the KL differs by q's entropy, a constant.
    """
    out, ref = ctx.outputs("forget"), ctx.reference("forget")
    labels = out.batch.labels[:, 1:]
    log_q = adjusted_targets(ref.logits[:, :-1], labels, beta)
    log_p = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    per_position = (log_q.exp() * (log_q - log_p)).sum(dim=-1)
    mask = out.response_mask.to(per_position.dtype)
    return ((per_position * mask).sum(dim=1) / out.response_length).mean()
