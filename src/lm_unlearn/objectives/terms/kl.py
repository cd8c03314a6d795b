import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


def kl_divergence(
    reference_logits: torch.Tensor, current_logits: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean over examples of the mean over masked positions of KL(p_ref || p_cur), in fp32.

    KL(p || q) = sum_v p(v) * (log p(v) - log q(v)); positions where mask == 0 (padding)
    contribute nothing.
    """
    log_p = torch.log_softmax(reference_logits.float(), dim=-1)
    log_q = torch.log_softmax(current_logits.float(), dim=-1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=-1)  # [B, T]
    mask = mask.to(per_position.dtype)
    per_example = (per_position * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_example.mean()


@term(
    "kl",
    "KL(original || current) on normal data, over real tokens (Yao et al. 2024)",
    splits=("retain",),
    needs_reference=True,
    full_logits=True,
)
def kl(ctx: StepContext) -> torch.Tensor:
    """Normal-data KL term of Yao, Xu & Liu (NeurIPS 2024), computed as a true KL.

    L_nor = (1/B) * sum_i (1/|m_i|) * sum_{t: m_i,t = 1} KL(p_orig(. | x_i,<=t) || p_cur(. | x_i,<=t)),
    over every real (non-padding) token position m of each normal example, prompt included.
    (The paper's code computes the cross-entropy sum_v p log q over all positions, padding
    included; it differs from this KL by the original model's entropy, a constant for the
    gradient, but only this form is 0 at the start and reads as a divergence.)
    """
    current = ctx.outputs("retain")
    reference = ctx.reference("retain")
    return kl_divergence(reference.logits, current.logits, current.batch.attention_mask)
