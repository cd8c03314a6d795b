"""Capture the outputs of chosen decoder layers during a forward pass (for RMU).

Forward hooks on the layer modules, rather than `output_hidden_states=True`, because the
hook's meaning is fixed ("what decoder layer l returned", as in the WMDP reference code)
while the returned tuple's last entry is, in some architectures, already normalised.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lm_unlearn.errors import ConfigError


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The list of transformer blocks (`model.layers` in Llama-style models, `h` in GPT-2)."""
    best = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] in ("layers", "h", "blocks"):
            if best is None or len(module) > len(best):
                best = module
    if best is None:
        raise ConfigError("could not find the model's decoder layers (a ModuleList named layers/h/blocks)")
    return best


def num_layers(model: torch.nn.Module) -> int:
    return len(decoder_layers(model))


class StopForward(Exception):
    """Raised by a capture hook once the last wanted layer has run (`stop_after_last`)."""


@contextmanager
def capture_layers(
    model: torch.nn.Module, layers: tuple[int, ...], stop_after_last: bool = False
) -> Iterator[dict[int, torch.Tensor]]:
    """Within the block, forward passes record {layer: output [B, T, H]} into the yielded dict.

    The first call wins: gradient-checkpointing recomputation during backward does not overwrite.
    stop_after_last: once every wanted layer is captured, raise StopForward, so the caller's
    forward skips the layers above and the LM head (catch it around the forward).
    """
    captured: dict[int, torch.Tensor] = {}
    if not layers:
        yield captured
        return
    blocks = decoder_layers(model)
    handles = []
    for index in layers:
        if not -len(blocks) <= index < len(blocks):
            raise ConfigError(f"layer {index} does not exist: the model has {len(blocks)} decoder layers")

        def hook(_module, _inputs, output, index=index):
            if index not in captured:
                captured[index] = output[0] if isinstance(output, tuple) else output
            if stop_after_last and len(captured) == len(set(layers)):
                raise StopForward

        handles.append(blocks[index].register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()
