"""Quantisation attack: round-trip the weights through low-bit integers and re-evaluate.

Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization" (ICLR 2025; arXiv
2410.16454, 2024) found that 4-bit quantisation of a model unlearned with small weight changes
restores much of the forgotten knowledge: the changes are smaller than one quantisation step,
so original and unlearned weights round to the same integers.

Simulated on CPU ("fake quantisation"): each weight matrix of the decoder layers is rounded
to `bits`-bit integers with an asymmetric min-max scale per group of `group_size` input
weights (round-to-nearest, the baseline of GPTQ/AWQ tooling), then mapped back to floats.
Embeddings, the unembedding and norms stay in full precision, as those tools leave them.
Written here because bitsandbytes/GPTQ kernels need a GPU, and a simulation is exact enough
for the question asked.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lm_unlearn.analysis import arch
from lm_unlearn.analysis.attacks.verdict import verdict
from lm_unlearn.analysis.measure import measure
from lm_unlearn.data import PromptFormat, Record


def fake_quantize(weight: torch.Tensor, bits: int, group_size: int = 128) -> torch.Tensor:
    """Round-trip a [out, in] matrix through `bits`-bit integers, groups along `in`:

    scale = (max - min) / (2^bits - 1), zero = round(-min / scale),
    q = clamp(round(w / scale) + zero, 0, 2^bits - 1), w' = (q - zero) * scale.
    A group whose width does not divide `in` falls back to one group per row.
    """
    out_features, in_features = weight.shape
    group = group_size if 0 < group_size <= in_features and in_features % group_size == 0 else in_features
    w = weight.detach().float().reshape(out_features, in_features // group, group)
    low = w.amin(dim=-1, keepdim=True)
    high = w.amax(dim=-1, keepdim=True)
    qmax = 2**bits - 1
    scale = ((high - low) / qmax).clamp(min=torch.finfo(torch.float32).tiny)
    zero = torch.round(-low / scale)
    q = torch.clamp(torch.round(w / scale) + zero, 0, qmax)
    return ((q - zero) * scale).reshape(out_features, in_features).to(weight.dtype)


def quantized_copy(model: nn.Module, bits: int, group_size: int = 128) -> nn.Module:
    """A copy of `model` whose decoder-layer Linear/Conv1D weights went through `fake_quantize`."""
    from transformers.pytorch_utils import Conv1D

    copied = copy.deepcopy(model)
    with torch.no_grad():
        for module in arch.decoder_layers(copied).modules():
            if isinstance(module, nn.Linear):
                module.weight.copy_(fake_quantize(module.weight, bits, group_size))
            elif isinstance(module, Conv1D):  # weights stored [in, out]
                module.weight.copy_(fake_quantize(module.weight.T, bits, group_size).T)
    return copied


def quantize(
    model,
    fmt: PromptFormat,
    records: list[Record],
    original=None,
    bits: tuple[int, ...] = (8, 4),
    group_size: int = 128,
    max_new_tokens: int = 32,
) -> dict:
    before = measure(model, records, fmt, max_new_tokens=max_new_tokens).summary()
    orig = (
        measure(original, records, fmt, max_new_tokens=max_new_tokens).summary()
        if original is not None
        else None
    )
    variants, verdicts = {}, []
    for b in bits:
        quantized = quantized_copy(model, b, group_size)
        after = measure(quantized, records, fmt, max_new_tokens=max_new_tokens)
        del quantized
        variants[f"{b}bit"] = after.summary() | {"answers": after.answers}
        verdicts.append(verdict("quantize", before, after.summary(), orig, f" ({b}-bit)"))
    best = max(variants, key=lambda k: (variants[k]["recall"], -variants[k]["nll"]))
    return {
        "attack": "quantize",
        "settings": {"bits": list(bits), "group_size": group_size, "scheme": "asymmetric min-max RTN"},
        "before": before,
        "after": {k: variants[best][k] for k in before},
        "best_variant": best,
        "original": orig,
        "variants": variants,
        "verdict": "; ".join(verdicts),
    }
