"""Which positions the LM head runs on: only those whose next token is scored.

In a chat-formatted QA batch these are a small part of [B, T] (demo data: 11 of 48), and the
[B, T, V] logits, their fp32 upcast, the vocabulary-wide statistics read from them and their
gradients are the largest activations of a small model with a large vocabulary. transformers'
`logits_to_keep` (a tensor of sequence indices) slices the hidden states before the head inside
the model's own forward, so DDP/FSDP wrappers and autocast see an ordinary forward call.
Training (objectives.context, objectives.reference) and evaluation (evaluation.likelihood) use it.

`logits_to_keep` is one set of positions for every row, so in a batch of several rows the head
still runs where only some row scores a token (graddiff's joined forget + retain batch of 8
demo rows: 144-200 kept (row, position) pairs for 91-115 response tokens). `head_on_rows` goes further in
training: a pre-hook on the head, inside the same forward, passes it just the response rows.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lm_unlearn.data.tokenize import IGNORE, Batch


def scored_positions(batch: Batch) -> torch.Tensor:
    """Positions t whose next token carries a label in some row: logits[:, t] predicts t + 1."""
    return (batch.labels[:, 1:] != IGNORE).any(dim=0).nonzero().flatten()


def head_positions(model: torch.nn.Module, batch: Batch) -> torch.Tensor | None:
    """`scored_positions`, or None when the model's forward has no `logits_to_keep`."""
    return scored_positions(batch) if accepts_logits_to_keep(model) else None


def response_rows(batch: Batch, positions: torch.Tensor) -> torch.Tensor:
    """[N] flat indices into [B, K] (row-major) of the (row, kept position) pairs whose next
    token is a response token: the order of `Outputs.response_targets`."""
    return (batch.labels[:, 1:][:, positions] != IGNORE).flatten().nonzero().squeeze(1)


@contextmanager
def head_on_rows(model: torch.nn.Module, rows: torch.Tensor | None) -> Iterator[None]:
    """Within the block, a forward called with `logits_to_keep` returns logits [1, N, V] of the
    `rows` (`response_rows`) only: the head's [B, K, H] input is cut to them first. Hidden
    states are per position, so each row's logits are those the full head gives there.
    rows=None: no change."""
    if rows is None:
        yield
        return

    def cut(_head: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        return (hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows).unsqueeze(0), *args[1:])

    handle = _unwrapped(model).get_output_embeddings().register_forward_pre_hook(cut)
    try:
        yield
    finally:
        handle.remove()


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    return _forward_takes_logits_to_keep(type(_unwrapped(model)))


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside DDP/FSDP/DeepSpeed and peft wrappers."""
    inner = model
    while isinstance(getattr(inner, "module", None), torch.nn.Module):  # DDP, FSDP, DeepSpeed
        inner = inner.module
    if hasattr(inner, "get_base_model"):  # peft
        inner = inner.get_base_model()
    return inner


@functools.cache
def _forward_takes_logits_to_keep(cls: type) -> bool:
    """Per model class, once: asked on every forward of the training loop."""
    return "logits_to_keep" in inspect.signature(cls.forward).parameters
