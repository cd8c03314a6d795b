"""Greedy decoding whose batch shrinks as rows finish.

transformers' `generate` keeps every row in the batch until the last one stops, feeding padding
to the finished ones: on the demo a quarter to a third of all decode row-steps. `greedy_decode`
takes the same argmax steps, and once an eighth of the rows in the batch have stopped (EOS or a
stop string) it drops them from the inputs and the KV cache, so later steps run on the live rows
only. Each row's tokens are those `generate` picks (tested against it); bf16 rounding may differ
with the batch's shape, as it does with the batch size.
"""

from __future__ import annotations

import torch

from lm_unlearn.evaluation.kv_cache import cache_argument
from lm_unlearn.head import accepts_logits_to_keep

# generation_config fields that leave greedy decoding plain argmax (the rest may add logits
# processors or stopping rules that `greedy_decode` does not apply; `generate` is used then)
PLAIN_FIELDS = {
    "bos_token_id", "eos_token_id", "pad_token_id", "max_length", "max_new_tokens", "use_cache",
    "do_sample", "temperature", "top_k", "top_p", "transformers_version", "_from_model_config",
    "output_attentions", "output_hidden_states", "num_beams",
}  # fmt: skip


def plain_greedy(model) -> bool:
    """Whether the model's generation config adds nothing to argmax decoding."""
    config = getattr(model, "generation_config", None)
    return config is not None and set(config.to_diff_dict()) <= PLAIN_FIELDS


def eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [] if eos is None else [eos])


@torch.no_grad()
def greedy_decode(model, ids, mask, cache, *, max_new_tokens: int, stopped=None) -> list[list[int]]:
    """New tokens per row (up to and with EOS, as `generate` gives them) for left-padded
    `ids`/`mask` [B, T] whose first `cache.get_seq_length()` positions are already in `cache`.
    `stopped(tokens)` says whether a row's tokens so far end it (a stop string); EOS always does."""
    eos, argument = eos_ids(model), cache_argument(model)
    keep = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    new: list[list[int]] = [[] for _ in range(len(ids))]
    rows = list(range(len(ids)))  # batch index -> row, for the rows still in the batch
    done: set[int] = set()
    past = cache.get_seq_length()
    inputs, positions = ids[:, past:], (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
    for _ in range(max_new_tokens):
        out = model(
            input_ids=inputs, attention_mask=mask, position_ids=positions, **{argument: cache}, **keep
        )
        picked = out.logits[:, -1].float().argmax(-1)  # as generate does; a bf16 argmax is 4x slower
        for row, token in zip(rows, picked.tolist()):
            if row in done:
                continue
            new[row].append(token)
            if token in eos or (stopped is not None and stopped(new[row])):
                done.add(row)
        if len(done) == len(ids):
            break
        positions = mask.sum(-1, keepdim=True)  # each row's next position: its real tokens so far
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        inputs = picked.unsqueeze(1)
        finished = [i for i, row in enumerate(rows) if row in done]
        if len(finished) * 8 >= len(rows):  # drop them: a copy of the cache, so not for every one
            live = torch.tensor([i for i, row in enumerate(rows) if row not in done], device=ids.device)
            cache.batch_select_indices(live)
            rows = [rows[i] for i in live.tolist()]
            inputs, positions, mask = inputs[live], positions[live], mask[live]
    return new
