"""Batched greedy generation: left padding, KV cache, stop strings."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lm_unlearn.evaluation.decode import greedy_decode, plain_greedy
from lm_unlearn.evaluation.kv_cache import cache_argument, preallocated_cache
from lm_unlearn.evaluation.shared_prefix import after_prefix_padding, common_opening, run_prefix, shareable
from lm_unlearn.evaluation.text_metrics import truncate_at_stop


def progress(total: int, desc: str | None):
    """A progress bar with counts and an ETA for one evaluation pass (none without `desc`)."""
    return tqdm(total=total, desc=desc, unit="ex", dynamic_ncols=True, leave=False, disable=desc is None)


@dataclass
class Generations:
    texts: list[str]
    tokens: int  # prompt + generated tokens processed, for the cost record


def autocast_for(model, precision: str):
    """bf16 autocast on the model's device when asked; fp32 otherwise."""
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    inputs: list[str],
    *,
    add_special_tokens: bool,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    stop: list[str] | None = None,
    precision: str = "fp32",
    share_prefix: bool = True,
    desc: str | None = None,
) -> Generations:
    """Greedy continuations of already-formatted `inputs`, in input order.

    Inputs are sorted by length so each batch pads little; padding goes on the left so every
    row's last prompt token sits at the same position and the KV cache stays aligned. The cache
    is allocated once per batch for the prompt and `max_new_tokens` (`kv_cache`). share_prefix:
    the batch's common opening (a chat template's system turn) runs once, for one row, and sits
    before the padding (`shared_prefix`).
    A row stops at EOS or a stop string and then leaves the batch (`decode`; models whose
    generation config asks for more than argmax go through transformers' `generate`); the
    decoded text is cut at the first stop string. `desc` labels a progress bar.
    """
    stop = [s for s in (stop or []) if s]
    model.eval()
    device = next(model.parameters()).device
    encoded = [tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"] for t in inputs]
    order = sorted(range(len(inputs)), key=lambda i: len(encoded[i]))
    texts: list[str] = [""] * len(inputs)
    tokens = 0

    def stopped(new_ids: list[int]) -> bool:
        return any(s in tokenizer.decode(new_ids, skip_special_tokens=True) for s in stop)

    bar = progress(len(inputs), desc)
    for start in range(0, len(order), batch_size):
        rows = [encoded[i] for i in order[start : start + batch_size]]
        cache = preallocated_cache(model, max(map(len, rows)) + max_new_tokens)
        # The last prompt token stays unshared: its logits give each row's first new token.
        opening = min(common_opening(rows), min(map(len, rows)) - 1) if share_prefix else 0
        shared = shareable(model, len(rows), opening) if cache is not None else 0
        ids, mask = after_prefix_padding(rows, shared, tokenizer.pad_token_id)
        ids, mask = ids.to(device), mask.to(device)
        with autocast_for(model, precision):
            if shared:
                run_prefix(model, ids[:1, :shared], len(rows), cache)
            if cache is not None and plain_greedy(model):
                new = greedy_decode(
                    model, ids, mask, cache, max_new_tokens=max_new_tokens, stopped=stopped if stop else None
                )
            else:
                out = hf_generate(model, tokenizer, ids, mask, cache, max_new_tokens, stop)
                new = [[t for t in row if t != tokenizer.pad_token_id] for row in out.tolist()]
        tokens += int(mask.sum()) + sum(len(t) for t in new)
        for i, row_ids in zip(order[start : start + batch_size], new):
            texts[i] = truncate_at_stop(tokenizer.decode(row_ids, skip_special_tokens=True), stop)
        bar.update(len(rows))
    bar.close()
    return Generations(texts=texts, tokens=tokens)


def hf_generate(model, tokenizer, ids, mask, cache, max_new_tokens: int, stop: list[str]) -> torch.Tensor:
    """transformers' greedy `generate` (for models `greedy_decode` does not take): new tokens
    [B, max_new_tokens], rows that stopped early padded."""
    extra = {"stop_strings": stop, "tokenizer": tokenizer} if stop else {}
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        **({cache_argument(model): cache} if cache is not None else {}),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        temperature=None,
        top_p=None,
        top_k=None,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    return out[:, ids.shape[1] :]
