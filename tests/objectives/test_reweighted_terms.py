"""wga, satimp, ce_u and pdu against hand computations on a vocabulary of 4 (support.terms)."""

import pytest
import torch
from support.terms import LOG, batch_of, context

from lm_unlearn.data.tokenize import IGNORE
from lm_unlearn.objectives import build_objective
from lm_unlearn.objectives.terms.ce_u import ce_u_loss

# Example 0: response tokens 3 then 2 (p = 1/2, 1/4); example 1: one response token 0 (p = 1/8).
FORGET = batch_of([[IGNORE, 3, 2], [IGNORE, 0, IGNORE]], [3, 2])
LOG2 = LOG(2)


def value(objective, batches=None, name=None):
    _, values = build_objective(None, objective)(context(batches or {"forget": FORGET}))
    return values[name or next(iter(objective))].item()


def test_wga_by_hand():
    # weight p^beta times log p, averaged per example, then over examples
    beta = 2.0
    ex0 = ((1 / 2) ** beta * LOG(1 / 2) + (1 / 4) ** beta * LOG(1 / 4)) / 2
    ex1 = (1 / 8) ** beta * LOG(1 / 8)
    assert value({"wga": {"beta": beta}}) == pytest.approx((ex0 + ex1) / 2)


def test_wga_with_beta_0_is_gradient_ascent():
    assert value({"wga": {"beta": 0.0}}) == pytest.approx(value({"ga": 1.0}))


def test_satimp_by_hand():
    beta1, beta2 = 2.0, 1.0

    def w(p):
        return p**beta1 * (1 - p) ** beta2

    ex0 = (w(1 / 2) * LOG(1 / 2) + w(1 / 4) * LOG(1 / 4)) / 2
    ex1 = w(1 / 8) * LOG(1 / 8)
    assert value({"satimp": {"beta1": beta1, "beta2": beta2}}) == pytest.approx((ex0 + ex1) / 2)


def test_reweighting_is_detached():
    # d/dlogp of sg(p)^beta * log p is sg(p)^beta: the weight itself gets no gradient.
    logits = torch.tensor([[0.0, 0.0, LOG2, 2 * LOG2]], requires_grad=True)  # p(3) = 1/2
    logp = torch.log_softmax(logits, -1)[0, 3]
    (logp.detach().exp() * logp).backward()
    expected = 0.5 * (torch.tensor([0.0, 0.0, 0.0, 1.0]) - torch.tensor([1, 1, 2, 4]) / 8)
    torch.testing.assert_close(logits.grad[0], expected)


def test_ce_u_loss_by_hand():
    # p = [1/8, 1/8, 2/8, 4/8]; removing the true token 3 leaves q = [1/4, 1/4, 1/2, 0]:
    # CE = -(1/4 log 1/8 + 1/4 log 1/8 + 1/2 log 1/4) = 2.5 log 2.
    logits = torch.tensor([[0.0, 0.0, LOG2, 2 * LOG2]])
    assert ce_u_loss(logits, torch.tensor([3])).item() == pytest.approx(2.5 * LOG2)


def test_ce_u_term_by_hand_skipping_the_first_answer_token():
    token3, token2, token0 = 2.5 * LOG2, 5 / 3 * LOG2, 11 / 7 * LOG2  # q renormalised without y
    everything = ((token3 + token2) / 2 + token0) / 2
    assert value({"ce_u": {"skip_first": 0}}) == pytest.approx(everything)
    # skip_first=1: example 0 keeps its second token, example 1 (one token) drops out
    assert value({"ce_u": {"skip_first": 1}}) == pytest.approx(token2)


def test_ce_u_is_zero_not_nan_when_every_answer_is_skipped():
    one_token = batch_of([[IGNORE, 3, IGNORE]], [2])
    assert value({"ce_u": {"skip_first": 1}}, {"forget": one_token}) == 0.0


def test_ce_u_gradient_lowers_the_true_token_and_keeps_the_rest_in_proportion():
    logits = torch.tensor([[0.0, 0.0, LOG2, 2 * LOG2]], requires_grad=True)
    ce_u_loss(logits, torch.tensor([3])).sum().backward()
    # d CE / d z = softmax(z) - q = [1/8 - 1/4, 1/8 - 1/4, 1/4 - 1/2, 1/2 - 0]
    torch.testing.assert_close(logits.grad[0], torch.tensor([-1 / 8, -1 / 8, -1 / 4, 1 / 2]))


def test_response_logits_equal_with_and_without_logits_to_keep(tiny_model_dir):
    from support.steps import tiny_data

    from lm_unlearn.objectives import TERMS

    model, data = tiny_data(tiny_model_dir)
    batch = data.batch("forget", 0)
    found = {}
    for full in (None, ()):  # None: whole logits; (): the head runs on response positions only
        ctx = context({"forget": batch}, model=model)
        ctx.full_logits = full
        found[full] = {name: TERMS[name].fn(ctx) for name in ("ce_u", "wga", "satimp")}
        assert (ctx.outputs("forget").positions is None) == (full is None)
    for name, value in found[None].items():
        torch.testing.assert_close(value, found[()][name])


# pdu: every position has logits [0, 0, log 2, 2 log 2]: max - mean = 2 log 2 - (3/4) log 2.
FLAT = (1.25 * LOG2) ** 2
RETAIN = batch_of([[IGNORE, 3, 3]], [3])  # two retain tokens of p = 1/2: retain NLL = log 2


def test_logit_margin_flattening_by_hand():
    from lm_unlearn.objectives.terms.pdu import logit_margin_flattening

    logits = torch.tensor([[0.0, 0.0, LOG2, 2 * LOG2], [1.0, 1.0, 1.0, 1.0]])
    torch.testing.assert_close(logit_margin_flattening(logits), torch.tensor([FLAT, 0.0]))


def pdu_steps(params, steps):
    objective = build_objective(None, {"pdu": params})
    found = []
    for _ in range(steps):
        _, values = objective(context({"forget": FORGET, "retain": RETAIN}))
        found.append({k: v.item() for k, v in values.items()})
    return objective, found


def test_pdu_lagrangian_and_dual_ascent_by_hand():
    eps, dual, lr = 0.5, 2.0, 0.25
    objective, found = pdu_steps({"eps": eps, "dual_init": dual, "dual_lr": lr}, 2)
    gap = LOG2 - eps  # > 0: the constraint is violated, so lambda grows
    assert found[0]["pdu"] == pytest.approx(FLAT + dual * gap)
    assert found[0]["pdu_dual"] == pytest.approx(dual + lr * gap)  # logged after the update
    assert found[1]["pdu"] == pytest.approx(FLAT + (dual + lr * gap) * gap)
    assert objective.state["pdu"] == pytest.approx({"eps": eps, "dual": dual + 2 * lr * gap, "updates": 2})


def test_pdu_default_eps_is_the_first_retain_nll_plus_tolerance_and_lambda_stays_nonnegative():
    objective, found = pdu_steps({"tolerance": 0.2, "dual_init": 0.1, "dual_lr": 10.0}, 2)
    assert found[0]["pdu_eps"] == pytest.approx(1.2 * LOG2)
    assert found[0]["pdu"] == pytest.approx(FLAT + 0.1 * (-0.2 * LOG2))
    assert found[0]["pdu_dual"] == 0.0  # 0.1 + 10 * (-0.2 log 2) < 0, projected to 0
    assert found[1]["pdu"] == pytest.approx(FLAT)


def test_pdu_dual_waits_for_the_warmup():
    _, found = pdu_steps({"eps": 0.0, "dual_init": 1.0, "dual_lr": 1.0, "dual_warmup": 2}, 3)
    assert [f["pdu_dual"] for f in found] == pytest.approx([1.0, 1.0, 1.0 + LOG2])


def test_unlearn_methods_lists_the_new_recipes_and_terms():
    from typer.testing import CliRunner

    from lm_unlearn.cli import app

    out = CliRunner().invoke(app, ["methods"]).output
    recipes, terms = out.split("Terms")
    for name in ("wga", "satimp", "ce_u", "pdu"):
        assert f"  {name} " in recipes and f"  {name} " in terms, name
    assert "dual_lr=1.0" in terms and "beta1=5.0" in terms and "skip_first=1" in terms
