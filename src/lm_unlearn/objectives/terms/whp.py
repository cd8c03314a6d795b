import torch
import torch.nn.functional as F

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


def generic_logits(base: torch.Tensor, reinforced: torch.Tensor, alpha: float) -> torch.Tensor:
    """v_generic = v_base - alpha * ReLU(v_reinforced - v_base), in fp32."""
    base, reinforced = base.float(), reinforced.float()
    return base - alpha * F.relu(reinforced - base)


@term(
    "whp",
    "toward v_base - a*ReLU(v_reinforced - v_base) on forget text (Eldan & Russinovich 2023)",
    needs_reference=True,
    full_logits=True,
)
def whp(
    ctx: StepContext,
    alpha: float = 1.0,
    hard: bool = False,
    reinforce_steps: int = 20,
    reinforce_lr: float = 1e-5,
) -> torch.Tensor:
    """Who's Harry Potter (Eldan & Russinovich, 2023), the logit form.

    Before training, a "reinforced" copy is fine-tuned on the forget set for `reinforce_steps`
    steps (full weights, AdamW at `reinforce_lr`, methods/whp.py). Tokens it boosts are the ones
    the forget data made likely, so the generic target lowers exactly those:
        v_generic = v_base - alpha * ReLU(v_reinforced - v_base).
    L = (1/B) sum_i (1/|y_i|) sum_{t in response} KL(softmax(v_generic) || p(. | x_i, y_i,<t)),
    or, with hard=True, the NLL of argmax v_generic (the paper's labels). The paper's second
    ingredient, replacing anchored terms by generic ones in the text, is not implemented.
    """
    out, ref = ctx.outputs("forget"), ctx.reference("forget")
    target = generic_logits(ref.logits[:, :-1], ref.extra["reinforced_logits"][:, :-1], alpha)
    log_p = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    if hard:
        per_position = -log_p.gather(-1, target.argmax(dim=-1, keepdim=True)).squeeze(-1)
    else:
        log_q = torch.log_softmax(target, dim=-1)
        per_position = (log_q.exp() * (log_q - log_p)).sum(dim=-1)
    mask = out.response_mask.to(per_position.dtype)
    return ((per_position * mask).sum(dim=1) / out.response_length).mean()
