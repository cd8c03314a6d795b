"""Greedy decoding that drops finished rows: transformers' greedy tokens, on fewer rows."""

import pytest

from lm_unlearn.data import PromptFormat
from lm_unlearn.evaluation import generation
from lm_unlearn.evaluation.decode import plain_greedy
from lm_unlearn.evaluation.shared_prefix import after_prefix_padding

PROMPTS = [
    "Tell me a story",
    "Why is the sky blue and the grass green?",
    "Hi",
    "Name a colour",
    "Count to ten",
]


def transformers_texts(monkeypatch, model, tokenizer, inputs, **kwargs) -> list[str]:
    with monkeypatch.context() as m:
        m.setattr(generation, "plain_greedy", lambda _model: False)
        return generation.generate(model, tokenizer, inputs, **kwargs).texts


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2", "opt"])
def test_rows_that_stop_leave_the_batch_and_every_row_keeps_transformers_tokens(tiny, arch, monkeypatch):
    from support.archs import tiny_arch

    model, tokenizer = tiny_arch(arch, vocab_size=len(tiny.tokenizer)), tiny.tokenizer
    fmt = PromptFormat.choose(tokenizer, "chat")
    inputs = [fmt.prompt_text(p) for p in PROMPTS]
    kwargs = dict(add_special_tokens=False, max_new_tokens=12, batch_size=5)
    # An EOS that one row emits early and another never: its first step in each row varies.
    model.generation_config.eos_token_id = None
    free = generation.generate(model, tokenizer, inputs, **kwargs)
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in inputs]
    ids, mask = after_prefix_padding(prompts, 0, tokenizer.pad_token_id)
    new = generation.hf_generate(model, tokenizer, ids, mask, None, 12, []).tolist()
    model.generation_config.eos_token_id = next(
        t
        for t in sorted({t for row in new for t in row})
        if any(t in r[:6] for r in new) and any(t not in r for r in new)
    )

    rows_per_step = []
    model.register_forward_pre_hook(
        lambda _m, _args, k: rows_per_step.append(len(k["input_ids"])), with_kwargs=True
    )
    ours = generation.generate(model, tokenizer, inputs, **kwargs)
    assert rows_per_step[-1] < 5  # rows left the batch
    assert ours.texts == transformers_texts(monkeypatch, model, tokenizer, inputs, **kwargs)
    assert any(t.strip() for t in ours.texts) and ours.texts != free.texts


def test_a_generation_config_with_more_than_argmax_goes_to_transformers(tiny):
    assert plain_greedy(tiny.model)
    tiny.model.generation_config.repetition_penalty = 1.3
    assert not plain_greedy(tiny.model)
