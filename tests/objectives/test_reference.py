"""Live and precomputed references give the same losses; NPO starts as gradient ascent."""

import copy

import pytest
import torch
from support.steps import tiny_data

from lm_unlearn.objectives import StepContext, build_objective
from lm_unlearn.objectives.reference import LiveReference, _row_key, build_reference, precompute
from lm_unlearn.objectives.terms.rmu import control_vector


def perturbed(model, seed=1):
    """The model after a small random step, so current != reference."""
    moved = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return moved


@pytest.mark.parametrize(
    "objective",
    [
        {"npo": 1.0, "kl": 1.0},
        {"dpo": 1.0},
        {"undial": 1.0},
        {"rmu": {"alpha": 10.0, "layer": 1}},
        {"whp": {"reinforce_steps": 2, "reinforce_lr": 0.01}},
    ],
    ids=lambda o: next(iter(o)),
)
def test_precomputed_and_live_reference_give_equal_losses(tiny_model_dir, objective):
    original, data = tiny_data(tiny_model_dir)
    objective = build_objective(None, objective)
    live = build_reference("live", objective, original, copy.deepcopy(original), data.batch, 4)
    cached = build_reference("precompute", objective, original, None, data.batch, 4)
    current = perturbed(original)
    for micro_step in range(4):
        a = objective(StepContext(current, lambda s, m=micro_step: data.batch(s, m), live))[1]
        b = objective(StepContext(current, lambda s, m=micro_step: data.batch(s, m), cached))[1]
        for name in a:
            assert a[name].item() == pytest.approx(b[name].item(), rel=1e-6, abs=1e-6), name


def test_precompute_stores_logits_only_when_a_term_needs_them(tiny_model_dir):
    model, data = tiny_data(tiny_model_dir)
    npo = build_objective(None, {"npo": 1.0})
    cache = precompute(LiveReference(model), data.batch, ("forget",), 3, (), npo.reference_logits)
    assert len(cache.cache) == 3  # three forget examples, each stored once however often seen
    assert all("logits" not in entry for entry in cache.cache.values())
    with pytest.raises(RuntimeError, match="not precomputed"):
        cache.outputs(data.batch("retain", 0), ())
    # npo + kl: whole logits only for the retain split, which kl reads; forget keeps log-probs.
    npo_kl = build_objective(None, {"npo": 1.0, "kl": 1.0})
    assert npo_kl.reference_logits == ("retain",)
    splits = npo_kl.reference_splits
    cache = precompute(LiveReference(model), data.batch, splits, 3, (), npo_kl.reference_logits)
    forget = [data.batch("forget", m) for m in range(3)]
    forget_keys = {_row_key(b, i)[1:] for b in forget for i in range(b.input_ids.shape[0])}
    retain = data.batch("retain", 0)
    assert all("logits" not in cache.cache[k] for k in forget_keys)
    assert cache.outputs(retain, (), full_logits=True).logits.shape[-1] == model.config.vocab_size
    with pytest.raises(RuntimeError, match="kept no logits"):
        cache.outputs(data.batch("forget", 0), (), full_logits=True)


def test_npo_gradient_at_the_reference_equals_summed_nll_ascent(tiny_model_dir):
    model, data = tiny_data(tiny_model_dir)
    reference = LiveReference(copy.deepcopy(model))
    batch = lambda split: data.batch(split, 0)  # noqa: E731
    npo = build_objective(None, {"npo": {"beta": 0.7}})
    npo(StepContext(model, batch, reference))[0].backward()
    g_npo = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ctx = StepContext(model, batch)
    ascent = ctx.outputs("forget").seq_logprob.mean()  # -(mean summed NLL), minimised by GA
    ascent.backward()
    for a, b in zip(g_npo, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("positions", ["all", "distinct"])
def test_rmu_by_hand_with_hidden_states(tiny_model_dir, positions):
    from lm_unlearn.objectives.terms.rmu import shared_prefix_length

    model, data = tiny_data(tiny_model_dir)
    alpha, coef, layer = 5.0, 3.0, 0
    spec = {"alpha": alpha, "steering_coef": coef, "layer": layer, "positions": positions}
    objective = build_objective(None, {"rmu": spec})
    reference = perturbed(model)  # so the retain part is not 0
    value = objective(StepContext(model, lambda s: data.batch(s, 0), LiveReference(reference)))[1]["rmu"]

    def mse(a, b, mask):
        per = ((a - b) ** 2).mean(-1)
        return ((per * mask).sum(1) / mask.sum(1)).mean()

    with torch.no_grad():
        f, r = data.batch("forget", 0), data.batch("retain", 0)
        # hidden_states[l + 1] is the output of decoder layer l (index 0 holds the embeddings)
        h_f = model(input_ids=f.input_ids, attention_mask=f.attention_mask, output_hidden_states=True)
        h_r = model(input_ids=r.input_ids, attention_mask=r.attention_mask, output_hidden_states=True)
        h_o = reference(input_ids=r.input_ids, attention_mask=r.attention_mask, output_hidden_states=True)
        u = control_vector(32, coef, seed=0)
        steered = f.attention_mask.clone()
        if positions == "distinct":  # the template tokens every example shares are left out
            shared = shared_prefix_length(f, r)
            assert shared > 0
            steered[:, :shared] = 0
        expected = mse(h_f.hidden_states[layer + 1], u, steered) + alpha * mse(
            h_r.hidden_states[layer + 1], h_o.hidden_states[layer + 1], r.attention_mask
        )
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert control_vector(32, coef, seed=0).norm().item() == pytest.approx(coef)


def test_live_lora_reference_runs_without_dropout_and_equals_precomputed():
    # GPT-2 has dropout (0.1 by default); the run trains in train mode, the reference must not.
    from transformers import GPT2Config, GPT2LMHeadModel

    from lm_unlearn.data.tokenize import IGNORE, Batch
    from lm_unlearn.models import wrap_lora

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=40, n_embd=16, n_layer=2, n_head=2, n_positions=32, resid_pdrop=0.5)
    model = wrap_lora(GPT2LMHeadModel(config), r=2, alpha=4, dropout=0.5, target_modules=["c_attn"])
    model.train()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 40, (2, 8), generator=g)
    labels = ids.clone()
    labels[:, :3] = IGNORE
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    objective = build_objective(None, {"npo": 1.0, "kl": 1.0})
    live = build_reference("live", objective, model, None, lambda split, step: batch, 1)
    cached = build_reference("precompute", objective, model, None, lambda split, step: batch, 1)
    first, second = (live.outputs(batch, (), full_logits=True) for _ in range(2))
    torch.testing.assert_close(first.logits, second.logits, rtol=0, atol=0)  # deterministic
    stored = cached.outputs(batch, (), full_logits=True)
    torch.testing.assert_close(first.token_logprob, stored.token_logprob, rtol=0, atol=1e-6)
    torch.testing.assert_close(first.logits, stored.logits, rtol=0, atol=1e-6)
    assert model.training and all(m.training for m in model.modules())  # the run's mode is kept


def test_rmu_stops_the_forward_after_its_layer_with_the_same_loss_and_gradients(tiny_model_dir):
    """RMU reads only layer outputs: the forward stops there (no upper layers, no LM head), and
    the loss and every gradient equal those of the full forward."""
    import dataclasses

    from lm_unlearn.objectives.hidden import decoder_layers

    model, data = tiny_data(tiny_model_dir)
    reference = perturbed(model)
    top_calls = []
    decoder_layers(model)[-1].register_forward_hook(lambda *_: top_calls.append(1))
    seen = {}
    for hidden_only in (True, False):
        objective = build_objective(None, {"rmu": {"layer": 0, "alpha": 5.0, "steering_coef": 3.0}})
        weighted = objective.terms[0]
        term = dataclasses.replace(weighted.term, hidden_only=hidden_only)
        objective.terms = [dataclasses.replace(weighted, term=term)]
        model.zero_grad(set_to_none=True)
        top_calls.clear()
        ctx = StepContext(model, lambda s: data.batch(s, 0), LiveReference(reference))
        loss, _ = objective(ctx)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        seen[hidden_only] = (loss.item(), grads, ctx.computed["forget"].has_logits, len(top_calls))
    (fast, fast_grads, fast_logits, fast_top), (full, full_grads, full_logits, full_top) = (
        seen[True],
        seen[False],
    )
    assert fast_top == 0 and full_top > 0  # the last layer never ran
    assert not fast_logits and full_logits
    assert fast == pytest.approx(full, rel=1e-6)
    assert fast_grads.keys() == full_grads.keys() and fast_grads
    for name, grad in fast_grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "method, resolved",
    [
        ("npo", "precompute"),  # response log-probs only
        ("dpo", "precompute"),
        ("yao", "live"),  # kl reads the original's whole logits
        ("rmu", "live"),  # reads layer activations
        ("whp", "live"),  # its own reinforced model
    ],
)
def test_auto_precomputes_only_what_is_a_few_log_probs_per_example(method, resolved):
    from lm_unlearn.objectives import build_objective
    from lm_unlearn.objectives.reference import reference_mode

    objective = build_objective(method, None)
    assert reference_mode("auto", objective) == resolved
    assert (
        reference_mode("live", objective) == "live"
        and reference_mode("precompute", objective) == "precompute"
    )
