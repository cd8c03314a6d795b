"""The preallocated KV cache: the same keys, values and generations as transformers' own."""

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from lm_unlearn.evaluation.kv_cache import PreallocatedLayer, cache_argument, preallocated_cache


def test_a_layer_returns_what_concatenation_would_as_views_of_one_storage():
    torch.manual_seed(0)
    ours, theirs = PreallocatedLayer(capacity=6), DynamicLayer()
    for length in (4, 1, 1, 3):  # a prompt, two decode steps, then more than the capacity left
        k, v = torch.randn(2, 3, length, 8), torch.randn(2, 3, length, 8)
        got, want = ours.update(k, v), theirs.update(k, v)
        assert all(torch.equal(a, b) for a, b in zip(got, want))
        assert ours.get_seq_length() == theirs.get_seq_length()
    assert ours.keys.untyped_storage().data_ptr() == ours.stored[0].untyped_storage().data_ptr()
    with pytest.raises(NotImplementedError):
        ours.crop(-1)


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2", "opt"])
def test_greedy_generation_with_it_equals_transformers_default_cache(arch):
    from support.archs import tiny_arch

    model = tiny_arch(arch)
    torch.manual_seed(1)
    ids = torch.randint(3, 60, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding on one row
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None, min_new_tokens=12)
    cache = preallocated_cache(model, ids.shape[1] + 12)
    assert cache is not None
    if arch != "gemma2":  # its sliding-window layers stay transformers' own
        assert all(type(layer) is PreallocatedLayer for layer in cache.layers)
    ours = model.generate(input_ids=ids, attention_mask=mask, **{cache_argument(model): cache}, **settings)
    theirs = model.generate(input_ids=ids, attention_mask=mask, **settings)
    assert torch.equal(ours, theirs)
