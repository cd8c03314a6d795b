"""Task-vector negation after fine-tuning on the forget set (Ilharco et al., ICLR 2023)."""

from __future__ import annotations

from collections.abc import Callable

import torch


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
