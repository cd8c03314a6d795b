"""Which positions the LM head runs on: only those whose next token is scored.

In a chat-formatted QA batch these are a small part of [B, T] (demo data: 11 of 48), and the
[B, T, V] logits, their fp32 upcast, the vocabulary-wide statistics read from them and their
gradients are the largest activations of a small model with a large vocabulary. transformers'
`logits_to_keep` (a tensor of sequence indices) slices the hidden states before the head inside
the model's own forward, so DDP/FSDP wrappers and autocast see an ordinary forward call.
Training (objectives.context, objectives.reference) and evaluation (evaluation.likelihood) use it.
"""

from __future__ import annotations

import functools
import inspect

import torch

from lm_unlearn.data.tokenize import IGNORE, Batch


def scored_positions(batch: Batch) -> torch.Tensor:
    """Positions t whose next token carries a label in some row: logits[:, t] predicts t + 1."""
    return (batch.labels[:, 1:] != IGNORE).any(dim=0).nonzero().flatten()


def head_positions(model: torch.nn.Module, batch: Batch) -> torch.Tensor | None:
    """`scored_positions`, or None when the model's forward has no `logits_to_keep`."""
    return scored_positions(batch) if accepts_logits_to_keep(model) else None


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    inner = model
    while isinstance(getattr(inner, "module", None), torch.nn.Module):  # DDP, FSDP, DeepSpeed
        inner = inner.module
    if hasattr(inner, "get_base_model"):  # peft
        inner = inner.get_base_model()
    return _forward_takes_logits_to_keep(type(inner))


@functools.cache
def _forward_takes_logits_to_keep(cls: type) -> bool:
    """Per model class, once: asked on every forward of the training loop."""
    return "logits_to_keep" in inspect.signature(cls.forward).parameters
