"""Attention on CPU under bf16 autocast: the kernel runs in fp32.

torch's CPU autocast lists `scaled_dot_product_attention` among the bf16 ops, and the CPU
flash-attention kernel is much slower in bf16 than in fp32: on SmolLM2-135M's shapes (8 rows,
9 heads of 64, 64 tokens) one forward and backward took 8.4 ms in bf16 against 3.3 ms in fp32
(2-core AMX machine). The inputs arrive mostly in fp32 anyway (rotary embeddings upcast q and
k), so `sdpa_fp32_on_cpu` runs transformers' own sdpa attention with autocast off and q, k, v in
fp32, and returns the output in the dtype autocast would have given it. The products are the
same attention, computed more precisely; on a GPU, or without autocast, it is transformers' sdpa
unchanged.

`use_fast_attention` switches a model to it, through transformers' public AttentionInterface and
AttentionMaskInterface, when the model uses sdpa and supports the interface. The name is never
saved: `save_model` writes the config with transformers' own "sdpa".
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "lm_unlearn_sdpa"


def sdpa_fp32_on_cpu(module, query, key, value, attention_mask, **kwargs):
    """transformers' sdpa attention; on CPU under autocast, computed in fp32 (see the module)."""
    if query.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    out_dtype = torch.get_autocast_dtype("cpu")
    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return out.to(out_dtype), weights


AttentionInterface.register(NAME, sdpa_fp32_on_cpu)
AttentionMaskInterface.register(NAME, sdpa_mask)


def use_fast_attention(model: torch.nn.Module) -> bool:
    """Switch `model` from sdpa to `sdpa_fp32_on_cpu`; True if it was switched."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not model._can_set_attn_implementation():
        return False
    model.set_attn_implementation(NAME)
    return True


def use_stock_attention(model: torch.nn.Module) -> None:
    """Back to transformers' own sdpa (the stock step of `unlearn perf` runs it)."""
    if getattr(model.config, "_attn_implementation", None) == NAME:
        model.set_attn_implementation("sdpa")
