import numpy as np
import pytest
import torch

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.evaluation.generation import generate
from lm_unlearn.evaluation.likelihood import score_records
from lm_unlearn.objectives.outputs import Outputs

PROMPTS = [
    "Who is the author of the Harry Potter books?",
    "What is the capital of France?",
    "Hi",
    "What is the name of the dark wizard who killed Harry Potter's parents and why?",
    "How many days are there in a week?",
]


@pytest.mark.parametrize("chat", [True, False])
def test_batched_generation_equals_one_by_one(tiny, tiny_plain_model_dir, chat):
    from lm_unlearn.models import load_model

    lm = tiny if chat else load_model(str(tiny_plain_model_dir))
    fmt = PromptFormat.choose(lm.tokenizer, "auto")
    inputs = [fmt.prompt_text(p) for p in PROMPTS]
    special = fmt.kind != "chat"
    batched = generate(
        lm.model, lm.tokenizer, inputs, add_special_tokens=special, max_new_tokens=12, batch_size=5
    )
    single = [
        generate(
            lm.model, lm.tokenizer, [x], add_special_tokens=special, max_new_tokens=12, batch_size=1
        ).texts[0]
        for x in inputs
    ]
    assert batched.texts == single
    assert any(t.strip() for t in single)  # the tiny model does emit text, so equality means something


def test_stop_strings_cut_generation(tiny):
    fmt = PromptFormat.choose(tiny.tokenizer, "auto")
    inputs = [fmt.prompt_text(p) for p in PROMPTS]
    full = generate(tiny.model, tiny.tokenizer, inputs, add_special_tokens=False, max_new_tokens=12).texts
    # Stop at the second character of each output, which must then end before it.
    stop = sorted({t[1] for t in full if len(t) > 2})
    cut = generate(
        tiny.model, tiny.tokenizer, inputs, add_special_tokens=False, max_new_tokens=12, stop=stop
    ).texts
    for a, b in zip(full, cut):
        assert a.startswith(b)
        assert not any(s in b for s in stop)


def test_scores_match_training_logprobs_and_hand_computed_stats(tiny):
    fmt = PromptFormat.choose(tiny.tokenizer, "auto")
    records = [
        Record("Who is Harry Potter's godfather?", "Sirius Black is Harry Potter's godfather.", "t:1"),
        Record("What is the capital of France?", "The capital of France is Paris.", "t:2"),
        Record("", "Raw text is scored as a whole.", "t:3"),
    ]
    scores = score_records(tiny.model, fmt, records, batch_size=2, reference=tiny.model)
    examples = encode_records(records, fmt, 256)
    batch = collate(examples, tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = tiny.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    out = Outputs(logits, batch)
    for i in range(len(records)):
        mask = out.response_mask[i]
        expected = out.token_logprob[i][mask].numpy()
        np.testing.assert_allclose(scores.token_logprob[i], expected, rtol=1e-5, atol=1e-5)
        # Min-K%++ statistics by hand at the first response position.
        t = int(mask.nonzero()[0])
        logp = torch.log_softmax(logits[i, t].double(), -1)
        mu = (logp.exp() * logp).sum()
        sigma = ((logp.exp() * (logp - mu) ** 2).sum()).sqrt()
        z = (logp[batch.labels[i, t + 1]] - mu) / sigma
        assert scores.token_zscore[i][0] == pytest.approx(float(z), rel=1e-4, abs=1e-4)
    assert scores.kl == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)  # KL of a model to itself
    np.testing.assert_allclose(scores.mean_nll, out.mean_nll.numpy(), rtol=1e-5)


class FullLogitsOnly(torch.nn.Module):
    """A model whose forward has no `logits_to_keep`: scoring slices its full logits instead."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_kl_and_logprobs_at_response_positions_equal_the_full_logits_by_hand(tiny):
    """The LM head runs on scored positions only (lm_unlearn.head); values are those of the
    full [B, T, V] logits, for a model with `logits_to_keep` and one without."""
    fmt = PromptFormat.choose(tiny.tokenizer, "auto")
    records = [
        Record("Who is Harry Potter's godfather?", "Sirius Black.", "t:1"),
        Record("What is the capital of France and why?", "The capital of France is Paris.", "t:2"),
    ]
    other = type(tiny.model)(tiny.model.config)
    other.load_state_dict(tiny.model.state_dict())
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = collate(encode_records(records, fmt, 256), tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        mine = tiny.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        ref = other(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    out = Outputs(mine, batch)
    for model in (tiny.model, FullLogitsOnly(tiny.model)):
        scores = score_records(model, fmt, records, batch_size=2, reference=other.eval())
        for i in range(len(records)):
            mask = out.response_mask[i]
            q, p = torch.log_softmax(ref[i].double(), -1), torch.log_softmax(mine[i].double(), -1)
            kl = (q.exp() * (q - p)).sum(-1)[:-1][mask]  # logits[t] predicts token t + 1
            assert scores.kl[i] == pytest.approx(float(kl.mean()), rel=1e-4) and scores.kl[i] > 1e-4
            expected = out.token_logprob[i][mask].numpy()
            np.testing.assert_allclose(scores.token_logprob[i], expected, rtol=1e-5, atol=1e-5)
