"""Task arithmetic, negation (Ilharco et al., ICLR 2023): fine-tune on forget, then negate the update."""

from collections.abc import Callable
from typing import Any

import torch

from lm_unlearn.objectives.context import RunContext, StepContext
from lm_unlearn.objectives.registry import term


@torch.no_grad()
def negate(model: torch.nn.Module, alpha: float, original: Callable[[], dict[str, torch.Tensor]]) -> str:
    """Turn the fine-tuned `model` into theta_0 - alpha * (theta_ft - theta_0), in place.

    LoRA: the adapter's update s*B*A is linear in B, so scaling every lora_B by -alpha gives
    exactly -alpha times the task vector without touching the base. Full: `original()` returns
    theta_0 (reloaded from the source, so no copy is held during training).
    """
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    if lora_b:
        for p in lora_b:
            p.mul_(-alpha)
        return "lora"
    theta_0 = original()
    for name, p in model.named_parameters():
        if name not in theta_0:
            raise RuntimeError(f"task_vector: parameter {name} is missing from the original model")
        base = theta_0[name].to(device=p.device, dtype=p.dtype)
        p.copy_(base - alpha * (p - base))
    return "full"


def negate_after_training(run: RunContext, alpha: float) -> dict[str, Any]:
    """after_training: negate the kept weights' task vector; the manifest records how."""
    return {"alpha": alpha, "applied_to": negate(run.model, alpha, run.original)}


@term(
    "task_vector",
    "fine-tune on forget (NLL), then theta = theta_0 - alpha*(theta_ft - theta_0) (Ilharco et al. 2023)",
    after_training=negate_after_training,
)
def task_vector(ctx: StepContext, alpha: float = 1.0) -> torch.Tensor:
    """Task arithmetic, negation (Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023).

    During the run: L = (1/B) sum_i (1/|y_i|) sum_t -log p(y_i,t | x_i, y_i,<t) on forget
    responses, i.e. plain fine-tuning, so the forget NLL in metrics.jsonl falls. After the last
    step `negate` replaces the weights by theta_0 - alpha * (theta_ft - theta_0) (in LoRA mode
    by scaling the adapters' B matrices by -alpha).
    Only this term's weight in the objective matters for the loss; alpha acts afterwards.
    """
    return ctx.outputs("forget").mean_nll.mean()
