"""A batch's common opening run once: the same scores and generations as the full forward."""

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from lm_unlearn.data import PromptFormat, Record
from lm_unlearn.evaluation import generation, likelihood
from lm_unlearn.evaluation.kv_cache import PreallocatedLayer
from lm_unlearn.evaluation.shared_prefix import after_prefix_padding, common_length, common_opening

# Prompts that open alike beyond the chat template's own opening, and differ in length.
PROMPTS = [
    "Tell me about the old lighthouse keeper and his dog",
    "Tell me about the old lighthouse",
    "Tell me about the old mill",
]
ANSWERS = ["He lived alone by the sea.", "It stood on the cliff for a century.", "Water turned it."]


def test_common_lengths_count_shared_real_tokens_only():
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 0], [5, 6, 9, 9]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]])
    assert common_length(ids, mask) == 2
    assert common_length(ids[:2], mask[:2]) == 3  # row 1's pad is no shared token
    assert common_opening([[5, 6, 7], [5, 6], [5, 6, 7, 8]]) == 2


def test_rows_are_padded_after_the_shared_opening():
    ids, mask = after_prefix_padding([[5, 6, 7, 8], [5, 6, 9]], 2, pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 8], [5, 6, 0, 9]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1]]
    ids, mask = after_prefix_padding([[5, 6, 7, 8], [5, 6, 9]], 0, pad_id=0)  # plain left padding
    assert ids.tolist() == [[5, 6, 7, 8], [0, 5, 6, 9]]


def test_a_preallocated_layer_repeats_its_rows_as_transformers_layer_does():
    torch.manual_seed(0)
    ours, theirs = PreallocatedLayer(capacity=8), DynamicLayer()
    k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    ours.update(k, v), theirs.update(k, v)
    ours.batch_repeat_interleave(3), theirs.batch_repeat_interleave(3)
    k, v = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
    assert all(torch.equal(a, b) for a, b in zip(ours.update(k, v), theirs.update(k, v)))


def spy_on_prefix(monkeypatch, module) -> list[tuple[int, int]]:
    """(prefix length, rows) of every shared-prefix run through `module`."""
    runs, real = [], module.run_prefix

    def spy(model, prefix_ids, rows, cache=None):
        runs.append((prefix_ids.shape[1], rows))
        return real(model, prefix_ids, rows, cache)

    monkeypatch.setattr(module, "run_prefix", spy)
    return runs


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2", "opt"])
def test_scores_with_a_shared_opening_equal_the_full_forward(tiny, arch, monkeypatch):
    from support.archs import tiny_arch

    model, fmt = tiny_arch(arch, vocab_size=len(tiny.tokenizer)), PromptFormat.choose(tiny.tokenizer, "chat")
    records = [Record(p, a, f"r{i}") for i, (p, a) in enumerate(zip(PROMPTS, ANSWERS))]
    runs = spy_on_prefix(monkeypatch, likelihood)
    kwargs = dict(max_length=64, batch_size=3, reference=tiny_arch(arch, 1, len(tiny.tokenizer)))
    shared = likelihood.score_records(model, fmt, records, **kwargs)
    assert len(runs) == 2 and runs[0][0] >= 8 and runs[0][1] == 3  # model and reference
    full = likelihood.score_records(model, fmt, records, share_prefix=False, **kwargs)
    assert len(runs) == 2
    for got, want in zip(shared.token_logprob + shared.token_zscore, full.token_logprob + full.token_zscore):
        assert got.tolist() == pytest.approx(want.tolist(), abs=1e-5)
    assert shared.kl == pytest.approx(full.kl, abs=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2", "opt"])
def test_generations_with_a_shared_opening_equal_the_full_forward(tiny, arch, monkeypatch):
    from support.archs import tiny_arch

    model, fmt = tiny_arch(arch, vocab_size=len(tiny.tokenizer)), PromptFormat.choose(tiny.tokenizer, "chat")
    inputs = [fmt.prompt_text(p) for p in PROMPTS]
    runs = spy_on_prefix(monkeypatch, generation)
    kwargs = dict(add_special_tokens=False, max_new_tokens=10, batch_size=3)
    shared = generation.generate(model, tiny.tokenizer, inputs, **kwargs)
    assert len(runs) == 1 and runs[0][0] >= 8 and runs[0][1] == 3
    full = generation.generate(model, tiny.tokenizer, inputs, share_prefix=False, **kwargs)
    assert shared.texts == full.texts and shared.tokens == full.tokens
    assert any(t.strip() for t in full.texts)


def test_vocabulary_statistics_in_chunks_equal_one_pass(monkeypatch):
    torch.manual_seed(0)
    logits, ref, targets = torch.randn(10, 7), torch.randn(10, 7), torch.randint(0, 7, (10,))
    whole = likelihood.token_stats(logits, targets, True, ref)
    monkeypatch.setattr(likelihood, "STATS_ROWS", 3)
    chunked = likelihood.chunked_token_stats(logits, targets, True, ref)
    assert whole.keys() == chunked.keys() == {"lp", "hits", "z", "kl"}
    assert all(torch.allclose(whole[k].float(), chunked[k].float()) for k in whole)
