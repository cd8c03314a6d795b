from collections import Counter

import torch
from support.steps import step_data_of

from lm_unlearn.data import PromptFormat, Record
from lm_unlearn.data.sampling import _generator, cycled_indices
from lm_unlearn.data.tokenize import IGNORE


def test_forget_stream_is_cycled_in_whole_epochs_not_truncated():
    n = 5
    stream = cycled_indices(n, 0, 3 * n, seed=0, stream="forget")
    for epoch in range(3):
        assert sorted(stream[epoch * n : (epoch + 1) * n]) == list(range(n))
    assert stream[:n] != stream[n : 2 * n] or stream[n : 2 * n] != stream[2 * n :]  # reshuffled


def make_data(tiny, rank=0, world=1, batch=2, k=1):
    fmt = PromptFormat.choose(tiny.tokenizer, "chat")
    forget_records = [Record(f"Forget question {i}?", f"Secret {i}.", f"f{i}") for i in range(6)]
    retain_records = [Record(f"Normal question {i}?", f"Normal answer {i}.", f"r{i}") for i in range(20)]
    return step_data_of(
        forget_records, retain_records, fmt, batch, 3, rank=rank, world_size=world, mismatch_k=k
    )


def test_two_ranks_split_the_single_process_global_batch(tiny):
    single = make_data(tiny, batch=4)
    ranks = [make_data(tiny, rank=r, world=2, batch=2) for r in range(2)]
    for step in range(4):
        assert single.forget_indices(step) == ranks[0].forget_indices(step) + ranks[1].forget_indices(step)
        joined = ranks[0].mismatch_examples(step) + ranks[1].mismatch_examples(step)
        assert [e.input_ids for e in single.mismatch_examples(step)] == [e.input_ids for e in joined]


def test_mismatch_pairs_each_forget_prompt_with_its_own_random_normal_answer(tiny):
    data = make_data(tiny, batch=6)
    tok = tiny.tokenizer
    answers = Counter()
    for step in range(5):
        forget_ids = data.forget_indices(step)
        examples = data.mismatch_examples(step)
        for index, example in zip(forget_ids, examples):
            prompt = tok.decode([t for t, lab in zip(example.input_ids, example.labels) if lab == IGNORE])
            response = tok.decode([t for t, lab in zip(example.input_ids, example.labels) if lab != IGNORE])
            assert f"Forget question {index}?" in prompt
            assert "Normal answer" in response and "Secret" not in response
            answers[response] += 1
        per_batch = {tok.decode(e.input_ids) for e in examples}
        assert len(per_batch) > 1  # drawn per example, not one answer shared by the batch
    assert len(answers) > 5


def test_mismatch_k_gives_each_prompt_k_answers_reproducibly_and_split_across_ranks(tiny):
    tok = tiny.tokenizer
    data, again = make_data(tiny, batch=3, k=4), make_data(tiny, batch=3, k=4)
    one = make_data(tiny, batch=3, k=1)
    for step in range(3):
        examples = data.mismatch_examples(step)
        assert len(examples) == 3 * 4
        assert [e.input_ids for e in examples] == [e.input_ids for e in again.mismatch_examples(step)]
        for row, index in enumerate(data.forget_indices(step)):
            group = examples[row * 4 : (row + 1) * 4]
            for example in group:
                prompt = [t for t, lab in zip(example.input_ids, example.labels) if lab == IGNORE]
                assert f"Forget question {index}?" in tok.decode(prompt)
            assert len({tuple(e.input_ids) for e in group}) > 1  # k different draws, mostly
        # k = 1 keeps the single-answer draws it always had: one randint per prompt
        draws = torch.randint(20, (3,), generator=_generator(3, "mismatch", step)).tolist()
        responses = [
            tok.decode([t for t, lab in zip(e.input_ids, e.labels) if lab != IGNORE])
            for e in one.mismatch_examples(step)
        ]
        assert [f"Normal answer {i}." in r for i, r in zip(draws, responses)] == [True] * 3
    single = make_data(tiny, batch=4, k=3)
    ranks = [make_data(tiny, rank=r, world=2, batch=2, k=3) for r in range(2)]
    for step in range(3):
        joined = ranks[0].mismatch_examples(step) + ranks[1].mismatch_examples(step)
        assert [e.input_ids for e in single.mismatch_examples(step)] == [e.input_ids for e in joined]
