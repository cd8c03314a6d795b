"""The gradient-norm membership attack: its score, its gradients, and a toy model whose members
are known (fine-tuned on them, so their gradients are smaller)."""

import numpy as np
import pytest
import torch

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.evaluation import mia
from lm_unlearn.evaluation.grad_norms import embedding_grad_norm, gradient_norms, linear_weight_grad_norm

MEMBERS = [Record(f"Member question {i}?", f"The member answer is {i} apples.", f"m{i}") for i in range(4)]
OTHERS = [Record(f"Other question {i}?", f"Nobody said {i} pears here.", f"o{i}") for i in range(4)]


def test_score_is_the_negated_mean_of_the_tensor_norms():
    assert mia.grad_norm_score(np.array([3.0, 4.0, 8.0])) == pytest.approx(-5.0)


def autograd_norms(model, fmt, record, precision="fp32") -> list[float]:
    """Every parameter's gradient norm for one record, by autograd on the whole logits."""
    model.eval()
    for q in model.parameters():
        q.requires_grad_(True)
    batch = collate(encode_records([record], fmt, 64), fmt.tokenizer.pad_token_id)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    targets = batch.labels[:, 1:]
    mask = targets != -100
    loss = torch.nn.functional.cross_entropy(logits[:, :-1][mask].float(), targets[mask])
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [float(g.float().norm()) for g in grads]  # in parameter order


def test_gradient_norms_equal_autograd_per_tensor_and_leave_the_model_as_it_was(tiny):
    model, fmt = tiny.model, PromptFormat.choose(tiny.tokenizer, "chat")
    frozen = next(model.parameters())
    frozen.requires_grad_(False)  # frozen parameters count too, and stay frozen
    model.train()
    found = gradient_norms(model, fmt, MEMBERS[:2], max_length=64)
    assert not frozen.requires_grad and model.training
    assert all(q.grad is None for q in model.parameters())
    for record, norms in zip(MEMBERS[:2], found):
        expected = autograd_norms(model, fmt, record)
        assert norms.tolist() == pytest.approx(expected, rel=1e-5)
        assert mia.grad_norm_score(norms) == pytest.approx(-np.mean(expected), rel=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_tied_output_head_and_bf16_autocast_give_autograds_norms(tiny, precision):
    """The tied head (the default model's) shares its weight with the embedding, so its norm is
    the embedding's rows plus the head's part (`embedding_grad_norm`), not a Linear tap's alone;
    under bf16 the taps see the bf16 inputs the layers used."""
    model, fmt = tiny.model, PromptFormat.choose(tiny.tokenizer, "chat")
    model.lm_head.weight = model.model.embed_tokens.weight
    assert len(list(model.parameters())) < len(list(model.named_parameters(remove_duplicate=False)))
    found = gradient_norms(model, fmt, MEMBERS[:1], max_length=64, precision=precision)[0]
    expected = autograd_norms(model, fmt, MEMBERS[0], precision)
    # bf16: autograd rounds each weight gradient to bf16 before its norm, the taps do not
    assert found.tolist() == pytest.approx(expected, rel=1e-5 if precision == "fp32" else 1e-2)


UNEVEN = [  # lengths differ, so a batch pads some of them
    Record("Short?", "Yes.", "u0"),
    Record("A longer question about the weather today?", "It is sunny with a light breeze all day.", "u1"),
    Record("Middle question here?", "A middling answer of some words.", "u2"),
]


def counting_batches(monkeypatch) -> list:
    """The batches gradient_norms runs, from here on."""
    from lm_unlearn.evaluation import grad_norms

    batches, summed = [], grad_norms.summed_example_nll
    monkeypatch.setattr(grad_norms, "summed_example_nll", lambda *a: batches.append(a[1]) or summed(*a))
    return batches


@pytest.mark.parametrize(
    "arch, together",
    [("llama", True), ("qwen2", True), ("olmo", True), ("gemma2", False), ("gpt2", False), ("opt", False)],
)
def test_each_record_in_a_padded_batch_gets_its_own_norms(tiny, arch, together, monkeypatch):
    """Each record's norms are autograd's for that record alone, though the batch pads it.
    Llama-family models run the records together (taps, RMSNorm offsets); one at a time: Gemma2
    (its scaled embedding is no plain nn.Embedding), GPT-2 (Conv1D) and OPT (LayerNorm)."""
    from support.archs import tiny_arch

    model, fmt = tiny_arch(arch, vocab_size=len(tiny.tokenizer)), PromptFormat.choose(tiny.tokenizer, "chat")
    batches = counting_batches(monkeypatch)
    found = gradient_norms(model, fmt, UNEVEN, max_length=64)
    assert [len(b.input_ids) for b in batches] == ([3] if together else [1, 1, 1])
    for record, norms in zip(UNEVEN, found):
        expected = autograd_norms(model, fmt, record)
        assert norms.tolist() == pytest.approx(expected, rel=1e-4, abs=1e-7), record.id


def test_a_tied_head_batches_and_bf16_stays_close_to_autograd(tiny, monkeypatch):
    model, fmt = tiny.model, PromptFormat.choose(tiny.tokenizer, "chat")
    model.lm_head.weight = model.model.embed_tokens.weight  # tied, as the default model
    batches = counting_batches(monkeypatch)
    found = gradient_norms(model, fmt, UNEVEN, max_length=64, precision="bf16")
    assert [len(b.input_ids) for b in batches] == [3]
    for record, norms in zip(UNEVEN, found):
        assert norms.tolist() == pytest.approx(autograd_norms(model, fmt, record, "bf16"), rel=2e-2)


def test_batches_are_cut_at_a_padded_token_budget():
    from lm_unlearn.evaluation.grad_norms import batches_by_tokens

    assert batches_by_tokens([30, 10, 20, 50], 60) == [[1, 2], [0], [3]]  # 3 x 30 = 90 > 60: cut
    assert batches_by_tokens([30, 10, 20, 50], 0) == [[1], [2], [0], [3]]  # 0: one at a time
    assert batches_by_tokens([300], 60) == [[0]]  # longer than the budget: still run, alone


@pytest.mark.parametrize("rows", [3, 40])  # the Gram-matrix form (few rows) and G^T A (many)
@pytest.mark.parametrize("p", [2.0, 1.0])
def test_a_linear_weights_gradient_norm_from_its_input_and_output_gradient(rows, p):
    torch.manual_seed(0)
    a, g = torch.randn(rows, 20, dtype=torch.float64), torch.randn(rows, 30, dtype=torch.float64)
    formed = (g.T @ a).norm(p)  # the weight gradient of y = a W^T with output gradient g
    assert float(linear_weight_grad_norm(a, g, p)) == pytest.approx(float(formed), rel=1e-5)


@pytest.mark.parametrize("tied", [False, True])
def test_an_embeddings_gradient_norm_from_its_ids_and_output_gradients(tied):
    torch.manual_seed(0)
    ids = torch.tensor([3, 7, 3, 0, 7, 7])  # repeated tokens add up on their row
    g_emb, a, g = torch.randn(6, 5), torch.randn(4, 5), torch.randn(4, 10)
    formed = torch.zeros(10, 5).index_add_(0, ids, g_emb) + (g.T @ a if tied else 0)
    found = embedding_grad_norm(ids, g_emb, *((a, g) if tied else ()))
    assert float(found) == pytest.approx(float(formed.norm()), rel=1e-5)


def test_members_of_a_fine_tuned_toy_model_have_smaller_gradients(tiny):
    model, fmt = tiny.model, PromptFormat.choose(tiny.tokenizer, "chat")
    batch = collate(encode_records(MEMBERS, fmt, 64), tiny.tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(40):  # the members are learned: low loss, near a minimum
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        targets = batch.labels[:, 1:]
        mask = targets != -100
        torch.nn.functional.cross_entropy(logits[:, :-1][mask], targets[mask]).backward()
        optimizer.step()
        optimizer.zero_grad()
    members = [mia.grad_norm_score(n) for n in gradient_norms(model, fmt, MEMBERS, max_length=64)]
    others = [mia.grad_norm_score(n) for n in gradient_norms(model, fmt, OTHERS, max_length=64)]
    assert max(others) < min(members)  # every member scores as likelier a member
    assert mia.auc(members, others) == 1.0


def test_the_attack_is_in_eval_json_and_the_reports_mia_table(full_result):
    from lm_unlearn.report import render_report

    for name in ("model", "original", "retain_model"):
        assert 0.0 <= full_result["metrics"][name]["mia.grad_norm.auc"] <= 1.0
    assert "mia.grad_norm.privleak" in full_result["metrics"]["model"]
    assert "first 32 forget and held-out" in full_result["info"]["definitions"]["mia"]["grad_norm"]
    mia_section = render_report(full_result).split("Privacy: membership inference", 1)[1]
    assert "mia.grad_norm.auc" in mia_section.split("</section>", 1)[0]


def test_the_attack_cap_is_32_or_8_for_the_demo_unless_set(tmp_path):
    from lm_unlearn.evaluation.config import load_eval_config

    forget = tmp_path / "f.jsonl"
    forget.write_text('{"prompt": "q", "response": "a"}\n')
    assert load_eval_config().grad_norm_examples() == 8  # the demo: 8 held-out questions
    assert load_eval_config(forget={"path": str(forget)}).grad_norm_examples() == 32
    assert load_eval_config(mia_grad_norm=0).grad_norm_examples() == 0
