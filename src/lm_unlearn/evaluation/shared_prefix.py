"""A batch's common opening, run once for all its rows.

A chat template opens every prompt with the same tokens: the default model's opens with a
24-token system turn, 60 % of an average demo prompt. Evaluation runs those tokens once, for one
row, and repeats their keys and values for every row of the batch; the batch's forward then
covers only what follows. Each row keeps its own positions (the opening sits at 0..P-1 in every
row) and attends to the same keys as in a forward over the whole row, so the results differ from
that forward only by rounding (tested against it). Training does not use this: its per-row
gradients would flow into the one shared row.
"""

from __future__ import annotations

import os

import torch
from transformers import DynamicCache

from lm_unlearn.evaluation.kv_cache import cache_argument, takes_dynamic_cache

MIN_SHARED = 4  # tokens: a shorter opening saves less than the extra forward call costs


def common_length(ids: torch.Tensor, mask: torch.Tensor) -> int:
    """How many leading positions hold the same real token in every row of `ids` [B, T]."""
    same = ((ids == ids[:1]) & (mask == 1)).all(dim=0).long()
    return int(same.cumprod(0).sum())


def common_opening(rows: list[list[int]]) -> int:
    """How many leading tokens every row of token lists has in common."""
    return len(os.path.commonprefix(rows))


def after_prefix_padding(
    rows: list[list[int]], shared: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and attention mask [B, T] for generation: each row's first `shared` tokens (the same in
    every row), then left padding, then the rest of the row, so that the shared part sits at the
    same positions in every row and every row ends at T. shared=0: plain left padding."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :shared], mask[i, :shared] = torch.tensor(row[:shared], dtype=torch.long), 1
        rest = len(row) - shared
        if rest:
            ids[i, width - rest :], mask[i, width - rest :] = torch.tensor(row[shared:], dtype=torch.long), 1
    return ids, mask


def shareable(model, rows: int, length: int) -> int:
    """`length` if sharing a prefix that long pays off and the model's cache supports it, else 0."""
    return length if rows > 1 and length >= MIN_SHARED and takes_dynamic_cache(model) else 0


def run_prefix(model, prefix_ids: torch.Tensor, rows: int, cache=None):
    """Fill `cache` (a new DynamicCache when None) with the keys and values of `prefix_ids`
    [1, P] and repeat them for `rows` rows: the cache to pass with the rows' remaining tokens.
    Call inside the same autocast as the forward that follows. The prefix runs through the
    model's body alone (`base_model`): no logits are read there."""
    cache = DynamicCache(config=model.config) if cache is None else cache
    body = model.base_model
    body(input_ids=prefix_ids, use_cache=True, **{cache_argument(body): cache})
    cache.batch_repeat_interleave(rows)
    return cache
