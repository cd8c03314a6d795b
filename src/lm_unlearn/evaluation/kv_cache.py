"""A KV cache for batched greedy generation that does not copy itself every step.

transformers' `DynamicLayer` grows a layer's keys and values by `torch.cat`, so each decode step
copies the whole cache of every layer: on the default model, 104 prompts and 48 new tokens, that
was a ninth of a generation pass on CPU. `PreallocatedLayer` allocates a layer's storage once, for
the prompt and every new token, writes each step's keys and values into it and hands attention
views of the part written: the same tensors, no copies. Layers of other kinds (sliding windows)
stay transformers' own.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """DynamicLayer's keys and values ([batch, heads, seq, head_dim]) in storage of `capacity`
    positions, reallocated only if a call outgrows it. For greedy generation: the layer cannot be
    cropped or reordered (beam search, assisted decoding), only repeated (a shared prefix) or
    cut to some rows (finished rows dropped)."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.stored = [self._storage(key_states, self.capacity), self._storage(value_states, self.capacity)]
        self.keys, self.values = (s[:, :, :0] for s in self.stored)
        self.is_initialized = True

    @staticmethod
    def _storage(like: torch.Tensor, positions: int) -> torch.Tensor:
        return like.new_empty(like.shape[0], like.shape[1], positions, like.shape[3])

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.stored[0].shape[-2]:  # more positions than planned: grow (a copy, as cat)
            grown = [self._storage(s, 2 * end) for s in self.stored]
            for new, old in zip(grown, self.stored):
                new[:, :, : self.length] = old[:, :, : self.length]
            self.stored = grown
        for store, states in zip(self.stored, (key_states, value_states)):
            store[:, :, self.length : end] = states
        self.length = end
        self.keys, self.values = (s[:, :, :end] for s in self.stored)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def reset(self) -> None:
        super().reset()
        self.length = 0

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("PreallocatedLayer is for greedy generation; it cannot be cropped")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices` (finished rows leave the batch, `decode`)."""
        self._new_rows(lambda written: written.index_select(0, indices))

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Each row `repeats` times (a prefix run once for a batch, `shared_prefix`)."""
        self._new_rows(lambda written: written.repeat_interleave(repeats, dim=0))

    def _new_rows(self, rows_of) -> None:
        """New storage of the same capacity holding `rows_of` the positions written so far."""
        if not self.is_initialized:
            return
        capacity = self.stored[0].shape[-2]
        written = [rows_of(s[:, :, : self.length]) for s in self.stored]
        self.stored = [self._storage(w, capacity) for w in written]
        for store, w in zip(self.stored, written):
            store[:, :, : self.length] = w
        self.keys, self.values = (s[:, :, : self.length] for s in self.stored)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("PreallocatedLayer is for greedy generation; it cannot be reordered")


def preallocated_cache(model, positions: int) -> DynamicCache | None:
    """A DynamicCache for `model` whose full-attention layers hold `positions` without copying;
    None where the model's layers are not transformers' plain dynamic ones (generate then makes
    its own cache)."""
    config = getattr(model, "config", None)
    if config is None or not takes_dynamic_cache(model):
        return None
    cache = DynamicCache(config=config)
    if not getattr(cache, "layers", None):  # layers made lazily (no config) or another layout
        return None
    cache.layers = [PreallocatedLayer(positions) if type(x) is DynamicLayer else x for x in cache.layers]
    return cache


def takes_dynamic_cache(model) -> bool:
    """Whether `model`'s forward works with transformers' DynamicCache."""
    return getattr(model, "_supports_default_dynamic_cache", lambda: False)()


def cache_argument(model) -> str:
    """The name generate and forward take a cache by: `cache` (transformers 5), else the older
    `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
