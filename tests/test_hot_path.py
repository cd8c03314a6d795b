"""The hot-path speed changes keep results: one concatenated forward over several splits, and
cross-entropy over response positions only."""

import pytest
import torch
import torch.nn.functional as F

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.data.sampling import StepData
from lm_unlearn.data.tokenize import IGNORE, Batch
from lm_unlearn.models import load_model
from lm_unlearn.objectives import StepContext, build_objective
from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.reference import LiveReference

FORGET = [("Who wrote the books?", "J.K. Rowling."), ("What is the owl called?", "Hedwig, a snowy owl.")]
RETAIN = [("What is the capital of France, the country?", "Paris."), ("What do bees make?", "Honey.")]


def _setup(model_dir):
    loaded = load_model(str(model_dir))
    fmt = PromptFormat.choose(loaded.tokenizer, "auto")
    forget = [Record(p, r, f"forget:{i}") for i, (p, r) in enumerate(FORGET)]
    retain = [Record(p, r, f"retain:{i}") for i, (p, r) in enumerate(RETAIN)]
    data = StepData(
        encode_records(forget, fmt, 64), forget, encode_records(retain, fmt, 64), retain, fmt, 2, 2, 64, 0
    )
    return loaded.model.float(), data


def _run(model, data, together, make_batch=None, full_logits=None):
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    ctx = StepContext(model, make_batch or (lambda split: data.batch(split, 0)))
    ctx.together, ctx.hidden_layers, ctx.full_logits = together, (1,), full_logits
    model.zero_grad(set_to_none=True)
    loss = ctx.outputs("forget").mean_nll.mean() - ctx.outputs("retain").mean_nll.mean()
    loss = loss + ctx.outputs("retain").layer(1).pow(2).mean()
    loss.backward()
    handle.remove()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return ctx, grads, len(calls)


def test_one_concatenated_forward_equals_separate_forwards(tiny_model_dir):
    model, data = _setup(tiny_model_dir)
    assert data.batch("forget", 0).input_ids.shape[1] != data.batch("retain", 0).input_ids.shape[1]
    apart, apart_grads, apart_calls = _run(model, data, ())
    joint, joint_grads, joint_calls = _run(model, data, ("forget", "retain"))
    assert (apart_calls, joint_calls) == (2, 1)
    for split in ("forget", "retain"):
        a, b = apart.outputs(split), joint.outputs(split)
        assert b.logits.shape == a.logits.shape and torch.equal(b.batch.input_ids, a.batch.input_ids)
        torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.token_logprob, a.token_logprob, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.layer(1), a.layer(1), rtol=1e-5, atol=1e-5)
    assert joint_grads.keys() == apart_grads.keys()
    for name in apart_grads:
        torch.testing.assert_close(joint_grads[name], apart_grads[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("together", [(), ("forget", "retain")])
def test_lm_head_on_response_positions_only_gives_the_same_logprobs_and_gradients(tiny_model_dir, together):
    model, data = _setup(tiny_model_dir)
    full, full_grads, _ = _run(model, data, together)
    head, head_grads, _ = _run(model, data, together, full_logits=())
    for split in ("forget", "retain"):
        a, b = full.outputs(split), head.outputs(split)
        width = a.batch.input_ids.shape[1]
        needed = set((a.batch.labels[:, 1:] != IGNORE).any(dim=0).nonzero().flatten().tolist())
        kept = b.positions.tolist()  # a joined forward keeps the union over its splits
        assert needed <= set(kept) and len(kept) < width - 1 and max(kept) < width - 1
        # the head ran on the response tokens only: [N, V] rows, in response_targets' order
        pairs = len(kept) * a.batch.input_ids.shape[0]
        assert b.rows_only and b._logits.shape[0] == len(b.response_targets) < pairs
        torch.testing.assert_close(b._logits, a.logits[:, :-1][a.response_mask], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.response_logits, a.response_logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.token_logprob, a.token_logprob, rtol=1e-5, atol=1e-5)
        with pytest.raises(RuntimeError, match="full_logits=True"):
            b.logits  # noqa: B018 - a term reading whole logits must declare it
    assert head_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(head_grads[name], full_grads[name], rtol=1e-4, atol=1e-6)


def test_live_reference_on_response_positions_matches_full_logits(tiny_model_dir):
    model, data = _setup(tiny_model_dir)
    batch = data.batch("forget", 0)
    live = LiveReference(model)
    with torch.no_grad():
        full, head = live.outputs(batch, ()), live.outputs(batch, (), full_logits=False)
    assert full.positions is None and head.positions is not None
    torch.testing.assert_close(head.token_logprob, full.token_logprob, rtol=1e-5, atol=1e-5)


def test_objective_asks_for_full_logits_only_where_a_term_reads_them():
    assert build_objective("graddiff", None).full_logits == () == build_objective("npo", None).full_logits
    assert build_objective("yao", None).full_logits == ("retain",)  # kl compares whole distributions


def test_full_logit_splits_run_apart_from_response_only_splits(tiny_model_dir):
    model, data = _setup(tiny_model_dir)
    full, full_grads, _ = _run(model, data, ("forget", "retain"))
    mixed, mixed_grads, calls = _run(model, data, ("forget", "retain"), full_logits=("retain",))
    assert calls == 2  # forget (response positions) and retain (whole logits) are not joined
    assert mixed.outputs("forget").positions is not None and mixed.outputs("retain").positions is None
    torch.testing.assert_close(
        mixed.outputs("retain").logits, full.outputs("retain").logits, rtol=1e-5, atol=1e-5
    )
    for split in ("forget", "retain"):
        torch.testing.assert_close(
            mixed.outputs(split).token_logprob, full.outputs(split).token_logprob, rtol=1e-5, atol=1e-5
        )
    for name in full_grads:
        torch.testing.assert_close(mixed_grads[name], full_grads[name], rtol=1e-4, atol=1e-6)


def test_left_padded_batches_are_forwarded_separately(tiny_model_dir):
    model, data = _setup(tiny_model_dir)
    pad = data.pad_id

    def left(split):  # padding on the left cannot be joined by right-padding to one width
        examples = data.forget if split == "forget" else data.retain
        return collate(examples[:2], pad, padding_side="left")

    _, _, calls = _run(model, data, ("forget", "retain"), make_batch=left)
    assert calls == 2


def test_token_logprob_counts_response_positions_only():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 1], [IGNORE, 2, 4, IGNORE]])
    batch = Batch(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long), labels)
    out = Outputs(logits, batch)
    logp = F.log_softmax(logits.detach(), dim=-1)
    # logits[:, t] predicts token t + 1: row 0 answers tokens 2 and 3, row 1 tokens 1 and 2.
    expected = torch.tensor([[0.0, logp[0, 1, 3], logp[0, 2, 1]], [logp[1, 0, 2], logp[1, 1, 4], 0.0]])
    torch.testing.assert_close(out.token_logprob, expected)
    # The same from logits computed at the response positions {0, 1, 2} only.
    kept = Outputs(logits.detach()[:, :3], batch, positions=torch.tensor([0, 1, 2]))
    torch.testing.assert_close(kept.token_logprob, expected)
    # Union {1, 2}: column k of the kept logits is position positions[k].
    labels2 = torch.tensor([[IGNORE, IGNORE, 3, 1], [IGNORE, IGNORE, 4, IGNORE]])
    batch2 = Batch(batch.input_ids, batch.attention_mask, labels2)
    kept = Outputs(logits.detach()[:, 1:3], batch2, positions=torch.tensor([1, 2]))
    expected2 = torch.tensor([[0.0, logp[0, 1, 3], logp[0, 2, 1]], [0.0, logp[1, 1, 4], 0.0]])
    torch.testing.assert_close(kept.token_logprob, expected2)
    out.seq_logprob.sum().backward()
    assert logits.grad[0, 0].abs().sum() == 0 and logits.grad[1, 2].abs().sum() == 0  # prompt, padding
    assert logits.grad[0, 1].abs().sum() > 0 and logits.grad[1, 0].abs().sum() > 0
    assert out.seq_logprob[0].item() == pytest.approx(float(logp[0, 1, 3] + logp[0, 2, 1]), rel=1e-6)
