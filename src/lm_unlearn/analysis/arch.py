"""Where each architecture keeps the modules that recovery analysis and the logit lens touch.

One row per family. Paths are attribute paths: `layers` from the top-level causal-LM module,
`mlp_out`/`attn_out` from one decoder layer, `final_norm`/`unembed` from the top level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lm_unlearn.errors import ModelError


@dataclass(frozen=True)
class ModuleMap:
    layers: str  # the ModuleList of decoder layers
    mlp_out: str  # the MLP's output projection (its input are the "coefficients")
    attn_out: str  # the attention's output projection
    final_norm: str  # the norm applied before the unembedding
    unembed: str = "lm_head"


_LLAMA_LIKE = ModuleMap(
    layers="model.layers", mlp_out="mlp.down_proj", attn_out="self_attn.o_proj", final_norm="model.norm"
)

ARCHITECTURES: dict[str, ModuleMap] = {
    **dict.fromkeys(
        ("llama", "mistral", "qwen2", "qwen3", "olmo", "olmo2", "gemma", "gemma2", "gemma3_text"),
        _LLAMA_LIKE,
    ),
    "gpt2": ModuleMap(
        layers="transformer.h",
        mlp_out="mlp.c_proj",
        attn_out="attn.c_proj",
        # Conv1D modules ([in, out] weights); hooks and whole-weight restores need no transpose.
        final_norm="transformer.ln_f",
    ),
    "opt": ModuleMap(
        layers="model.decoder.layers",
        mlp_out="fc2",
        attn_out="self_attn.out_proj",
        final_norm="model.decoder.final_layer_norm",
    ),
}


def module_map(model: nn.Module) -> ModuleMap:
    """The module map for `model`, or a ModelError naming the architecture and the known ones."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    found = ARCHITECTURES.get(model_type)
    if found is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(
            f"recovery analysis does not know the architecture {model_type!r} "
            f"({type(model).__name__}); known: {known}. Add a row to "
            "lm_unlearn/analysis/arch.py ARCHITECTURES naming its decoder layers, MLP output "
            "projection, attention output projection and final norm."
        )
    config = model.config
    if (
        model_type == "opt"
        and getattr(config, "word_embed_proj_dim", config.hidden_size) != config.hidden_size
    ):
        # OPT-350m projects the final state to a smaller width before unembedding.
        raise ModelError("OPT models with project_out (e.g. opt-350m) are not supported by recovery analysis")
    return found


def get(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    return get(model, module_map(model).layers)


def mlp_out(model: nn.Module, layer: int) -> nn.Module:
    return get(decoder_layers(model)[layer], module_map(model).mlp_out)


def attn_out(model: nn.Module, layer: int) -> nn.Module:
    return get(decoder_layers(model)[layer], module_map(model).attn_out)


def num_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def unembed(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Logits from a residual-stream state: the model's final norm, then its unembedding."""
    m = module_map(model)
    logits = get(model, m.unembed)(get(model, m.final_norm)(hidden))
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:  # Gemma 2 squashes its logits; kept so lens logits equal the model's own at the top
        logits = torch.tanh(logits / cap) * cap
    return logits
