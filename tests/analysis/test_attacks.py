import copy

import pytest
import torch
from support.archs import tiny_arch

from lm_unlearn.analysis.attacks import ATTACKS
from lm_unlearn.analysis.attacks.logit_lens import lens_ranks, token_ranks
from lm_unlearn.analysis.attacks.quantize import fake_quantize, quantized_copy
from lm_unlearn.analysis.attacks.relearn import split_forget
from lm_unlearn.analysis.attacks.verdict import gap_closed, verdict
from lm_unlearn.analysis.measure import answer_recall, content_words, greedy_answers, measure
from lm_unlearn.analysis.recovery import question_batches
from lm_unlearn.config import DatasetConfig
from lm_unlearn.data import PromptFormat, Record, read_records
from lm_unlearn.data.demo import demo_dataset
from lm_unlearn.errors import DataError


@pytest.fixture
def setup(tiny):
    fmt = PromptFormat.choose(tiny.tokenizer, "auto")
    records = read_records(DatasetConfig(path=demo_dataset("forget").path, limit=6), "forget")
    return tiny.model, fmt, records


def test_content_word_recall_hand_computed():
    assert content_words("The Harry Potter books were written by J.K. Rowling.") == {
        "harry",
        "potter",
        "books",
        "written",
        "rowling",
    }
    # Question words leave the count: 'written', 'rowling' remain; one of two is produced.
    assert (
        answer_recall("It was Rowling.", "The books were written by J.K. Rowling.", "Who wrote the books?")
        == 0.5
    )
    assert answer_recall("no idea", "Hogwarts.", "") == 0.0
    assert answer_recall("anything", "the of and", "") == 0.0  # no content words at all


def test_fake_quantize_16_bit_is_near_identity_and_4_bit_is_not():
    torch.manual_seed(0)
    w = torch.randn(8, 256)
    step = (w.reshape(8, 2, 128).amax(-1) - w.reshape(8, 2, 128).amin(-1)).max() / (2**16 - 1)
    assert (fake_quantize(w, 16) - w).abs().max() <= step / 2 + 1e-6
    w4 = fake_quantize(w, 4)
    assert (w4 - w).abs().max() > 1e-2
    assert max(len(torch.unique(row)) for row in w4.reshape(16, 128)) <= 16  # at most 2^4 levels per group


def test_fake_quantize_hand_computed():
    # One group [0, 1, 2, 3] at 1 bit: scale 3, zero 0 -> levels {0, 3}; 1 -> 0, 2 -> 3.
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert fake_quantize(w, 1, group_size=4).tolist() == [[0.0, 0.0, 3.0, 3.0]]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_quantized_copy_at_16_bits_keeps_logits(name):
    model = tiny_arch(name)
    ids = torch.randint(3, 64, (2, 6))
    with torch.no_grad():
        a = model(input_ids=ids).logits
        b = quantized_copy(model, 16, group_size=16)(input_ids=ids).logits
        c = quantized_copy(model, 2, group_size=16)(input_ids=ids).logits
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
    assert (a - c).abs().max() > 1e-2


def test_token_ranks():
    logits = torch.tensor([[0.1, 0.5, 0.3], [1.0, 1.0, 0.0]])
    assert token_ranks(logits, torch.tensor([1, 2])).tolist() == [0, 2]
    assert token_ranks(logits, torch.tensor([2, 0])).tolist() == [1, 0]


def test_logit_lens_last_layer_equals_model_ranks(setup):
    model, fmt, records = setup
    batches = question_batches(records, fmt, 4)
    first, every = lens_ranks(model, batches)
    assert len(first) == 2 and len(first[0]) == len(records)
    with torch.no_grad():
        expected = []
        for b in batches:
            logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits[:, :-1]
            mask = b.labels[:, 1:] != -100
            expected += token_ranks(logits, b.input_ids[:, 1:])[mask].tolist()
    assert every[-1] == expected


def test_greedy_answers_batched_equal_one_by_one(setup):
    model, fmt, records = setup
    prompts = [fmt.prompt_text(r.prompt) for r in records[:3]]
    together = greedy_answers(model, fmt, prompts, max_new_tokens=6, batch_size=3)
    alone = [greedy_answers(model, fmt, [p], max_new_tokens=6)[0] for p in prompts]
    assert together == alone


def test_split_forget():
    rs = [Record("q", str(i), f"r{i}") for i in range(5)]
    train, held = split_forget(rs, 0.5)
    assert [r.response for r in train] == ["0", "1"] and len(held) == 3
    with pytest.raises(DataError, match="at least 2"):
        split_forget(rs[:1], 0.5)


def test_gap_and_verdict():
    assert gap_closed(5.0, 3.0, 1.0) == 0.5
    assert gap_closed(5.0, 3.0, None) is None
    line = verdict(
        "quantize", {"nll": 5.0, "recall": 0.0}, {"nll": 2.0, "recall": 0.1}, {"nll": 1.0, "recall": 0.9}
    )
    assert line.endswith("knowledge comes back") and "75% of the unlearning gap" in line
    assert verdict("x", {"nll": 5.0, "recall": 0.0}, {"nll": 5.0, "recall": 0.0}).endswith("forgetting holds")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_run_on_tiny_model_and_leave_it_unchanged(setup, name):
    model, fmt, records = setup
    original = copy.deepcopy(model)
    with torch.no_grad():
        for p in original.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    options = {"max_new_tokens": 4} if name != "logit_lens" else {}
    if name == "relearn":
        options |= {"steps": 3, "lr": 1e-2}
    result = ATTACKS[name](model, fmt, records, original=original, **options)
    assert result["attack"] == name and result["verdict"].startswith(name)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    if name == "relearn":
        assert result["train_nll"]["after"] < result["train_nll"]["before"]  # the fine-tuning acted
        assert result["measured_on"] == 3
    if name in ("quantize", "paraphrase", "jailbreak", "relearn"):
        before = measure(model, records if name != "relearn" else records[3:], fmt, max_new_tokens=4)
        assert result["before"]["nll"] == pytest.approx(before.nll)
