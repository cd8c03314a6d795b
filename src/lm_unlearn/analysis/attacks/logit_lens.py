"""Logit lens (nostalgebraist, 2020; used on unlearned models by Lynch et al., 2024, and
Hong et al., 2024): project each layer's residual stream through the model's final norm and
unembedding, and ask how highly it ranks the forgotten answer.

If the answer ranks high in middle layers but low at the output, unlearning suppressed the
knowledge late instead of removing it.
"""

from __future__ import annotations

import statistics

import torch

from lm_unlearn.analysis import arch
from lm_unlearn.analysis.recovery import answer_positions, question_batches
from lm_unlearn.data import PromptFormat, Record


def token_ranks(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank of each target among the logits of its row: the number of strictly larger logits
    (0 = the top prediction)."""
    chosen = logits.gather(-1, targets.unsqueeze(-1))
    return (logits > chosen).sum(dim=-1)


@torch.no_grad()
def lens_ranks(model, batches) -> tuple[list[list[int]], list[list[int]]]:
    """Per layer: ranks of the first answer token of each question, and of every answer token."""
    model.eval()
    layers = arch.decoder_layers(model)
    first: list[list[int]] = [[] for _ in layers]
    every: list[list[int]] = [[] for _ in layers]
    for batch in batches:
        states: list[torch.Tensor] = [None] * len(layers)
        handles = []
        for i, layer in enumerate(layers):

            def keep(module, args, out, i=i, states=states):
                states[i] = out[0] if isinstance(out, tuple) else out

            handles.append(layer.register_forward_hook(keep))
        try:
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        finally:
            for h in handles:
                h.remove()
        positions = answer_positions(batch)
        targets = torch.zeros_like(batch.input_ids)
        targets[:, :-1] = batch.input_ids[:, 1:]
        # The first answer position of each row is its first True.
        is_first = positions & (positions.long().cumsum(dim=1) == 1)
        for i, hidden in enumerate(states):
            ranks = token_ranks(arch.unembed(model, hidden).float(), targets)
            every[i].extend(ranks[positions].tolist())
            first[i].extend(ranks[is_first].tolist())
    return first, every


def summarise(first: list[list[int]], every: list[list[int]]) -> dict:
    return {
        "first_token_median_rank": [statistics.median(r) for r in first],
        "answer_token_median_rank": [statistics.median(r) for r in every],
        "answer_token_top1": [sum(x == 0 for x in r) / len(r) for r in every],
    }


def logit_lens(model, fmt: PromptFormat, records: list[Record], original=None, batch_size: int = 8) -> dict:
    batches = question_batches(records, fmt, batch_size)
    device = next(model.parameters()).device
    batches = [b.to(device) for b in batches]
    unlearned = summarise(*lens_ranks(model, batches))
    result = {"attack": "logit_lens", "layers": arch.num_layers(model), "unlearned": unlearned}
    top1 = unlearned["answer_token_top1"]
    best = max(range(len(top1)), key=lambda i: top1[i])
    text = (
        f"logit_lens: answer tokens ranked first at the output {top1[-1]:.0%}, "
        f"best layer {best} {top1[best]:.0%}"
    )
    if original is not None:
        reference = summarise(*lens_ranks(original, batches))
        result["original"] = reference
        ref_top1 = reference["answer_token_top1"][-1]
        text += f" (original at the output: {ref_top1:.0%})"
        gap = ref_top1 - top1[-1]
        if gap >= 0.05:
            hidden = (top1[best] - top1[-1]) / gap
            text += ": knowledge visible inside" if hidden >= 0.5 else ": no hidden answer found"
        else:
            text += ": unlearning left the output ranks almost unchanged"
    result["verdict"] = text
    return result
