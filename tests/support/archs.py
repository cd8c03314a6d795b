"""Tiny random models of every architecture the module map claims, built from configs."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GemmaConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    OlmoConfig,
    OPTConfig,
    Qwen2Config,
)

VOCAB = 64
_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=3,
    num_attention_heads=2,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
_IDS = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)

CONFIGS = {
    "llama": lambda: LlamaConfig(**_COMMON),
    "qwen2": lambda: Qwen2Config(**_COMMON),
    "mistral": lambda: MistralConfig(**_COMMON),
    "olmo": lambda: OlmoConfig(**_COMMON),
    "gemma": lambda: GemmaConfig(**_COMMON, head_dim=8),
    "gemma2": lambda: Gemma2Config(**_COMMON, head_dim=8),
    "gpt2": lambda: GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=3, n_head=2, n_positions=64, **_IDS),
    "opt": lambda: OPTConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        ffn_dim=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        max_position_embeddings=64,
        word_embed_proj_dim=16,
        **_IDS,
    ),
}


def tiny_arch(name: str, seed: int = 0, vocab_size: int = VOCAB):
    torch.manual_seed(seed)
    config = CONFIGS[name]()
    config.vocab_size = vocab_size
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
