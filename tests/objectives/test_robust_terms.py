"""gru's projection and sam's perturbation against hand computations on tiny tensors."""

import math

import pytest
import torch
from support.terms import LOG, batch_of, context

from lm_unlearn.config import validate_config
from lm_unlearn.data.tokenize import IGNORE
from lm_unlearn.errors import ConfigError
from lm_unlearn.objectives import build_objective
from lm_unlearn.objectives.terms.gru import gru_rectify
from lm_unlearn.sam import forget_terms, perturbation, perturbed


def vec(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def test_gru_projects_a_conflicting_update_off_the_retain_gradient():
    # <(1, 1), (-1, 0)> = -1 < 0: (1, 1) - (-1 / 1) * (-1, 0) = (0, 1), orthogonal to (-1, 0)
    update, state = [vec(1.0, 1.0)], {}
    found = gru_rectify(update, [vec(-1.0, 0.0)], state, ema=1.0)
    torch.testing.assert_close(update[0], vec(0.0, 1.0))
    assert found["cos"] == pytest.approx(-1 / math.sqrt(2))


def test_gru_leaves_an_update_that_does_not_conflict():
    update = [vec(1.0, 1.0)]
    found = gru_rectify(update, [vec(1.0, -0.5)], {}, ema=1.0)  # <u, r> = 0.5 >= 0
    torch.testing.assert_close(update[0], vec(1.0, 1.0))
    assert found["cos"] == pytest.approx(0.5 / (math.sqrt(2) * math.sqrt(1.25)))


def test_gru_averages_the_retain_gradient_over_steps_and_spans_parameters():
    # ema 0.5: r_1 = 0.5 * (-2, 0) = (-1, 0); r_2 = 0.5 * (0, -2) + 0.5 * r_1 = (-0.5, -1).
    # Two parameters (one coordinate each): <(1, 1), r_2> = -1.5, |r_2|^2 = 1.25, so
    # (1, 1) - (-1.5 / 1.25) * (-0.5, -1) = (0.4, -0.2).
    state = {}
    gru_rectify([vec(0.0), vec(0.0)], [vec(-2.0), vec(0.0)], state, ema=0.5)
    torch.testing.assert_close(state["retain_avg"][0], vec(-1.0))
    update = [vec(1.0), vec(1.0)]
    gru_rectify(update, [vec(0.0), vec(-2.0)], state, ema=0.5)
    torch.testing.assert_close(torch.cat(state["retain_avg"]), vec(-0.5, -1.0))
    torch.testing.assert_close(torch.cat(update), vec(0.4, -0.2))


def test_gru_adds_back_the_retain_gradient_with_retain_weight():
    update = [vec(1.0, 1.0)]
    gru_rectify(update, [vec(-1.0, 0.0)], {}, ema=1.0, retain_weight=0.5)
    torch.testing.assert_close(update[0], vec(-0.5, 1.0))  # (0, 1) + 0.5 * (-1, 0)


def test_gru_handles_parameters_without_a_gradient():
    update, state = [None, vec(1.0)], {}
    gru_rectify(update, [vec(-1.0), vec(-1.0)], state, ema=1.0)
    # <(0, 1), (-1, -1)> = -1, |r|^2 = 2: (0, 1) - (-1/2) * (-1, -1) = (-0.5, 0.5)
    torch.testing.assert_close(torch.cat(update), vec(-0.5, 0.5))


def test_gru_value_is_the_retain_nll():
    retain = batch_of([[IGNORE, 3, 3]], [3])  # two retain tokens of p = 1/2
    objective = build_objective(None, {"npo": 1.0, "gru": 1.0})
    forget = batch_of([[IGNORE, 3, 2]], [3])
    ref = torch.tensor([LOG(1), LOG(1), LOG(2), LOG(4)])
    total, values = objective(context({"forget": forget, "retain": retain}, reference_row=ref))
    assert values["gru"].item() == pytest.approx(LOG(2))
    assert total.item() == pytest.approx(values["npo"].item())  # gru's value is not trained on


def test_gru_alone_is_refused():
    with pytest.raises(ConfigError, match="only rectify the gradient of other terms"):
        build_objective(None, {"gru": 1.0})


def test_sam_perturbation_on_a_quadratic():
    # L(w) = 1/2 w^T A w, A = diag(1, 4), w = (1, 1): g = A w = (1, 4), |g| = sqrt(17).
    rho = 0.1
    a = vec(1.0, 4.0)
    w = torch.nn.Parameter(vec(1.0, 1.0))
    g = [a * w.detach()]
    eps = rho * vec(1.0, 4.0) / math.sqrt(17)
    torch.testing.assert_close(perturbation(g, rho)[0], eps)
    before = w.detach().clone()
    with perturbed([w], g, rho):
        torch.testing.assert_close(w.detach(), before + eps)
        (0.5 * (a * w * w).sum()).backward()  # the gradient at w + eps
    assert torch.equal(w.detach(), before)  # restored exactly
    torch.testing.assert_close(w.grad, a * (before + eps))  # A (w + eps), applied at w


def test_sam_without_a_forget_gradient_does_not_move():
    assert perturbation([torch.zeros(2), None], 0.1) == [None, None]


def test_sam_perturbs_the_forget_terms_only():
    assert forget_terms(build_objective(None, {"npo": 1.0, "retain_nll": 1.0, "kl": 1.0})) == ("npo",)
    assert forget_terms(build_objective("yao", None)) == ("ga", "mismatch")
    with pytest.raises(ConfigError, match="train.sam_rho perturbs the forget terms"):
        forget_terms(build_objective(None, {"retain_nll": 1.0}))


def test_sam_config():
    assert validate_config({"method": "sam", "data": {"forget": {"path": "f.jsonl"}}}).train.sam_rho == 0.01
    mine = {"method": "sam", "train": {"sam_rho": 0.05}, "data": {"forget": {"path": "f.jsonl"}}}
    assert validate_config(mine).train.sam_rho == 0.05
    assert validate_config({"method": "npo"}).train.sam_rho == 0.0
    with pytest.raises(ConfigError, match=r"train.sam_rho: Input should be greater than or equal to 0"):
        validate_config({"method": "npo", "train": {"sam_rho": -0.1}})


def test_gru_without_retain_data_says_what_is_missing(tmp_path, tiny_model_dir):
    from support.tiny import tiny_run_config

    from lm_unlearn.engine import train

    cfg = tiny_run_config(tmp_path, tiny_model_dir, method="gru", **{"data.retain": "null"})
    with pytest.raises(ConfigError, match="terms gru need normal data: set data.retain.path"):
        train(cfg, tmp_path / "run")


def test_unlearn_methods_lists_gru_and_sam():
    from typer.testing import CliRunner

    from lm_unlearn.cli import app

    recipes, terms = CliRunner().invoke(app, ["methods"]).output.split("Terms")
    assert "  gru " in recipes and "  sam " in recipes and "sam_rho" in recipes
    assert "  gru " in terms and "ema=0.8" in terms and "retain_weight=0.0" in terms
