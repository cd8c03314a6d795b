"""Who's Harry Potter (Eldan & Russinovich, 2023): a reinforced model first, then the generic target."""

import copy
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F

from lm_unlearn.data.tokenize import Batch
from lm_unlearn.objectives.context import RunContext, StepContext
from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.registry import term

log = logging.getLogger(__name__)


def generic_logits(base: torch.Tensor, reinforced: torch.Tensor, alpha: float) -> torch.Tensor:
    """v_generic = v_base - alpha * ReLU(v_reinforced - v_base), in fp32."""
    base, reinforced = base.float(), reinforced.float()
    return base - alpha * F.relu(reinforced - base)


def train_reinforced(
    model: torch.nn.Module,
    make_batch: Callable[[str, int], Batch],
    steps: int,
    lr: float,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """A frozen fp32 copy of `model` after `steps` AdamW steps of forget-set NLL (full weights).

    `model` must still be the original: a LoRA wrapper is merged into a plain copy first
    (its freshly initialised adapters add nothing), so the copy trains all weights. The copy
    is fp32 whatever `model` stores: the default LoRA + bf16 set-up keeps the frozen base in
    bf16, where an AdamW step at lr 1e-5 is below half an ulp of most weights, and the copy
    barely moved (mean |dw| 1.9e-5 instead of 2e-4 after 20 steps on the tiny test model).
    Autocast still runs the matmuls in bf16; the fp32 weights accumulate the small steps.
    """
    reinforced = copy.deepcopy(model)
    if hasattr(reinforced, "merge_and_unload"):
        reinforced = reinforced.merge_and_unload()
    reinforced.to(device=device, dtype=torch.float32).train().requires_grad_(True)
    optimizer = torch.optim.AdamW(reinforced.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        batch = make_batch("forget", step).to(device)
        with autocast():
            logits = reinforced(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss = Outputs(logits, batch).mean_nll.mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.info("whp reinforced model: step %d/%d, forget NLL %.4f", step + 1, steps, loss.item())
    return reinforced.eval().requires_grad_(False)


def reinforce(run: RunContext, reinforce_steps: int, reinforce_lr: float, **_) -> dict[str, torch.nn.Module]:
    """before_training: the reinforced model, whose logits the reference gives as
    `extra["reinforced_logits"]`."""
    model = train_reinforced(run.model, run.batch, reinforce_steps, reinforce_lr, run.autocast, run.device)
    return {"reinforced_logits": model}


@term(
    "whp",
    "toward v_base - a*ReLU(v_reinforced - v_base) on forget text (Eldan & Russinovich 2023)",
    needs_reference=True,
    full_logits=True,
    before_training=reinforce,
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
    steps (full weights, AdamW at `reinforce_lr`: `train_reinforced`). Tokens it boosts are the
    ones the forget data made likely, so the generic target lowers exactly those:
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
