"""npo, simnpo, idk, dpo, undial, whp against hand computations on a vocabulary of 4."""

import math

import pytest
import torch
from support.terms import LOG, ROW, P, batch_of, context

from lm_unlearn.data.tokenize import IGNORE
from lm_unlearn.objectives import build_objective


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# Example 0: response tokens 3 then 2 (p = 1/2, 1/4); example 1: one response token 0 (p = 1/8).
FORGET = batch_of([[IGNORE, 3, 2], [IGNORE, 0, IGNORE]], [3, 2])
UNIFORM = torch.zeros(4)  # reference: p = 1/4 everywhere


def value(objective, batches, reference_row=None, name=None):
    _, values = build_objective(None, objective)(context(batches, reference_row=reference_row))
    return values[name or next(iter(objective))].item()


def test_npo_by_hand():
    beta = 0.5
    # log pi - log pi_ref: example 0 log(1/8) - log(1/16) = log 2; example 1 log(1/8) - log(1/4) = -log 2
    ratios = [LOG(2), -LOG(2)]
    expected = sum(-(2 / beta) * LOG(sigmoid(-beta * r)) for r in ratios) / 2
    assert value({"npo": {"beta": beta}}, {"forget": FORGET}, UNIFORM) == pytest.approx(expected)


def test_npo_is_4_over_beta_log_2_at_the_reference():
    got = value({"npo": {"beta": 0.1}}, {"forget": FORGET}, ROW)
    assert got == pytest.approx((2 / 0.1) * LOG(2))


def test_simnpo_by_hand_and_without_reference():
    beta, delta = 2.0, 0.5
    normalised = [(LOG(1 / 2) + LOG(1 / 4)) / 2, LOG(1 / 8)]
    expected = sum(-(2 / beta) * LOG(sigmoid(-beta * x - delta)) for x in normalised) / 2
    objective = build_objective(None, {"simnpo": {"beta": beta, "delta": delta}})
    assert not objective.needs_reference
    _, values = objective(context({"forget": FORGET}))  # no reference provider at all
    assert values["simnpo"].item() == pytest.approx(expected)


def test_idk_is_the_refusal_nll():
    refusal = batch_of([[IGNORE, IGNORE, 3, 3], [IGNORE, 1, IGNORE, IGNORE]], [4, 2])
    expected = (LOG(2) + LOG(8)) / 2  # example 0: mean of log 2, log 2; example 1: log 8
    assert value({"idk": 1.0}, {"refusal": refusal}) == pytest.approx(expected)


def test_dpo_prefers_the_refusal_by_hand():
    beta = 0.3
    refusal = batch_of([[IGNORE, 3], [IGNORE, 2]], [2, 2])  # p = 1/2 and 1/4
    # chosen margins (vs p_ref = 1/4): log 2, 0; rejected margins from test_npo_by_hand: log 2, -log 2
    margins = [LOG(2) - LOG(2), 0 - (-LOG(2))]
    expected = sum(-LOG(sigmoid(beta * m)) for m in margins) / 2
    got = value({"dpo": {"beta": beta}}, {"forget": FORGET, "refusal": refusal}, UNIFORM)
    assert got == pytest.approx(expected)


def kl(q, p):
    return sum(qi * LOG(qi / pi) for qi, pi in zip(q, p))


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_undial_by_hand():
    beta = 2.0

    # Reference uniform; the target token's logit lowered by beta, the rest unchanged.
    def target(token):
        return softmax([-beta if v == token else 0.0 for v in range(4)])

    ex0 = (kl(target(3), P) + kl(target(2), P)) / 2
    ex1 = kl(target(0), P)
    got = value({"undial": {"beta": beta}}, {"forget": FORGET}, UNIFORM)
    assert got == pytest.approx((ex0 + ex1) / 2, rel=1e-5)


def test_undial_with_beta_0_is_distillation_to_the_original():
    assert value({"undial": {"beta": 0.0}}, {"forget": FORGET}, ROW) == pytest.approx(0.0, abs=1e-6)


class Reinforced:
    """A reference provider for WHP: base and reinforced logits given per position."""

    def __init__(self, base, reinforced):
        self.base, self.reinforced = base, reinforced

    def outputs(self, batch, layers, full_logits=True):
        from lm_unlearn.objectives.outputs import Outputs

        shape = (*batch.input_ids.shape, 4)
        return Outputs(
            self.base.expand(shape), batch, extra={"reinforced_logits": self.reinforced.expand(shape)}
        )


def test_whp_soft_and_hard_targets_by_hand():
    from lm_unlearn.objectives import StepContext
    from lm_unlearn.objectives.context import ReferenceProvider

    base = torch.tensor([0.5, 1.0, 0.0, 0.0])
    reinforced = torch.tensor([0.5, 3.0, 0.0, -1.0])  # boosts token 1 by 2, lowers token 3
    alpha = 1.5
    generic = [0.5, 1.0 - alpha * 2.0, 0.0, 0.0]  # ReLU keeps only the boost
    provider = type("P", (Reinforced, ReferenceProvider), {})(base, reinforced)
    batch = batch_of([[IGNORE, 3, 2]], [3])
    soft = build_objective(None, {"whp": {"alpha": alpha}})
    _, values = soft(StepContext(context({}).model, lambda s: batch, provider))
    assert values["whp"].item() == pytest.approx(kl(softmax(generic), P), rel=1e-5)
    hard = build_objective(None, {"whp": {"alpha": alpha, "hard": True}})
    _, values = hard(StepContext(context({}).model, lambda s: batch, provider))
    assert values["whp"].item() == pytest.approx(LOG(8))  # argmax is token 0, p = 1/8


def test_task_vector_trains_like_fine_tuning():
    expected = (((LOG(2) + LOG(4)) / 2) + LOG(8)) / 2
    assert value({"task_vector": {"alpha": 3.0}}, {"forget": FORGET}) == pytest.approx(expected)


def test_refusal_batch_pairs_each_forget_prompt_with_a_seeded_refusal(tiny_model_dir):
    from support.steps import tiny_data

    _, data = tiny_data(tiny_model_dir)
    tokenizer = data.fmt.tokenizer
    refusals = data.refusal_examples(5)
    assert [e.source for e in refusals] == [f"refusal(forget:{i})" for i in data.forget_indices(5)]
    for example in refusals:
        answer = tokenizer.decode([t for t in example.labels if t != IGNORE], skip_special_tokens=True)
        assert answer.strip() in data.refusals
    again = [e.input_ids for e in data.refusal_examples(5)]
    assert again == [e.input_ids for e in refusals]
    assert any(data.refusal_examples(m)[0].input_ids != again[0] for m in range(6, 12))


def test_simnpo_recipe_weighs_forget_and_retain_alike():
    """1:1, from the sweep in docs/tuning.md: the authors' TOFU 0.1375:1 did not move the
    knowledge scenario's target in 60 steps."""
    from lm_unlearn.objectives import RECIPES
    from lm_unlearn.objectives.terms import simnpo  # noqa: F401  (registers the recipes)

    assert RECIPES["simnpo"].objective == {"simnpo": 1.0, "retain_nll": 1.0}
