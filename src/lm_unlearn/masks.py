"""Localised unlearning: restrict updates to a chosen subset of parameters (`train.mask`).

Two levels, computed once before training:
- tensors, by name (regular expressions) and/or decoder-layer index, intersected with what
  the objective's terms require (e.g. RMU's layers); the others get requires_grad=False and
  never reach the optimizer;
- entries within the chosen tensors, by gradient saliency on the forget set (SalUn, Fan et
  al. ICLR 2024; WAGLE, Jia et al. NeurIPS 2024): per tensor, the top fraction of |dL_forget/dw|
  keeps its gradient, the rest have it multiplied by 0 by a gradient hook. With AdamW and no
  weight decay a parameter whose gradient is always 0 never moves (its moments stay 0), so
  unselected entries stay bit-identical.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable

import torch

from lm_unlearn.config import MaskConfig
from lm_unlearn.data.tokenize import Example, collate
from lm_unlearn.errors import ConfigError
from lm_unlearn.objectives.outputs import Outputs

log = logging.getLogger(__name__)
_LAYER = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")


def layer_of(name: str) -> int | None:
    found = _LAYER.search(name)
    return int(found.group(1)) if found else None


def tensor_filter(cfg: MaskConfig, extra: list[Callable[[str], bool]]) -> Callable[[str], bool]:
    patterns = [re.compile(p) for p in cfg.params]
    layers = set(cfg.layers)

    def keep(name: str) -> bool:
        if patterns and not any(p.search(name) for p in patterns):
            return False
        if layers and layer_of(name) not in layers:
            return False
        return all(f(name) for f in extra)

    return keep


def forget_gradients(
    model: torch.nn.Module, examples: list[Example], pad_id: int, batch_size: int, device
) -> None:
    """Accumulate into .grad the gradient of the forget set's mean per-example NLL."""
    model.zero_grad(set_to_none=True)
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collate(chunk, pad_id).to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        (Outputs(logits, batch).mean_nll.sum() / len(examples)).backward()


def top_fraction(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Bool mask of the ceil(fraction * n) largest entries (ties broken by topk's order)."""
    k = max(1, math.ceil(fraction * scores.numel()))
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[scores.flatten().topk(k).indices] = True
    return mask.view_as(scores)


def apply_mask(
    cfg: MaskConfig,
    objective,
    model: torch.nn.Module,
    forget: list[Example],
    pad_id: int,
    *,
    mode: str,
    weight_decay: float,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> dict | None:
    """The engine's one call, before the optimizer is built. Returns a manifest summary or None."""
    extra = objective.trainable_filters(model)
    if not (cfg.params or cfg.layers or cfg.saliency or extra):
        return None
    keep = tensor_filter(cfg, extra)
    chosen = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if keep(name):
            chosen.append((name, p))
        else:
            p.requires_grad_(False)
    if not chosen:
        raise ConfigError(
            "train.mask selects no trainable parameter (check train.mask.params / train.mask.layers "
            "against the names printed by model.named_parameters())"
        )
    summary = {"tensors": [n for n, _ in chosen], "entries": sum(p.numel() for _, p in chosen)}
    if cfg.saliency is not None:
        if mode == "lora":
            raise ConfigError(
                "train.mask.saliency needs train.mode=full: fresh LoRA adapters have zero gradients"
            )
        if weight_decay > 0:
            raise ConfigError(
                "train.mask.saliency with train.weight_decay > 0 would shrink unselected weights; "
                "set train.weight_decay=0"
            )
        examples = forget[: cfg.saliency_examples] if cfg.saliency_examples else forget
        model.to(device)
        forget_gradients(model, examples, pad_id, batch_size, device)
        selected = 0
        for _, p in chosen:
            mask = top_fraction(p.grad.abs(), cfg.saliency).to(p.dtype)
            selected += int(mask.sum())
            p.register_hook(lambda g, mask=mask: g * mask)
        model.zero_grad(set_to_none=True)
        summary["entries"] = selected
        summary["saliency"] = {"fraction": cfg.saliency, "examples": len(examples)}
    log.info("mask: %d tensors, %d trainable entries", len(chosen), summary["entries"])
    return summary
