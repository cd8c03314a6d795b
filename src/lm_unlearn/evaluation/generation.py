"""Batched greedy generation: left padding, KV cache, stop strings."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lm_unlearn.evaluation.kv_cache import cache_argument, preallocated_cache
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
    desc: str | None = None,
) -> Generations:
    """Greedy continuations of already-formatted `inputs`, in input order.

    Inputs are sorted by length so each batch pads little; padding goes on the left so every
    row's last prompt token sits at the same position and the KV cache stays aligned. The cache
    is allocated once per batch for the prompt and `max_new_tokens` (`kv_cache`).
    Generation stops at EOS or a stop string (rows that finish early are padded), and the
    decoded text is cut at the first stop string. `desc` labels a progress bar.
    """
    stop = [s for s in (stop or []) if s]
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"]) for t in inputs]
    order = sorted(range(len(inputs)), key=lambda i: lengths[i])
    texts: list[str] = [""] * len(inputs)
    tokens = 0
    extra = {"stop_strings": stop, "tokenizer": tokenizer} if stop else {}
    bar = progress(len(inputs), desc)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        enc = tokenizer(
            [inputs[i] for i in rows],
            add_special_tokens=add_special_tokens,
            padding=True,
            padding_side="left",
            return_tensors="pt",
        ).to(device)
        cache = preallocated_cache(model, enc["input_ids"].shape[1] + max_new_tokens)
        with autocast_for(model, precision):
            out = model.generate(
                **enc,
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
        new = out[:, enc["input_ids"].shape[1] :]
        tokens += int(enc["attention_mask"].sum()) + int((new != tokenizer.pad_token_id).sum())
        for i, ids in zip(rows, new):
            texts[i] = truncate_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stop)
        bar.update(len(rows))
    bar.close()
    return Generations(texts=texts, tokens=tokens)
