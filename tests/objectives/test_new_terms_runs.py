"""wga, satimp, ce_u, pdu, gru and sam through train() on the tiny model: forget NLL rises; pdu,
yao's k-answer mismatch, gru and sam resume exactly; gru and sam change the step only as their
rules say."""

import json

import pytest
from support.tiny import tiny_run_config, train_until_checkpoint

from lm_unlearn import checkpoint as ckpt
from lm_unlearn.engine import train


@pytest.fixture(scope="module")
def taught_dir(tmp_path_factory, tiny_model_dir):
    """The tiny model fine-tuned on the forget rows, so their tokens are likely (a random model
    gives every token p ~ 1/400, where satimp's sg(p)^5 weight leaves nothing to unlearn)."""
    root = tmp_path_factory.mktemp("taught")
    settings = {"objective": "{sft: 1}", "train.max_steps": 40, "train.batch_size": 4}
    settings |= {"train.schedule": "constant", "train.lr": 1e-2}
    return train(tiny_run_config(root, tiny_model_dir, **settings), root / "run").run_dir / "model"


@pytest.mark.parametrize("method", ["wga", "satimp", "ce_u", "pdu", "gru", "sam"])
def test_recipe_raises_forget_nll(tmp_path, taught_dir, method):
    settings = {"method": method, "train.max_steps": 6, "train.batch_size": 4, "train.schedule": "constant"}
    rows = train(tiny_run_config(tmp_path, taught_dir, **settings), tmp_path / "run").history
    assert rows[0]["forget_nll"] < 1.0  # taught: the forget answers start likely
    assert rows[-1]["forget_nll"] > rows[0]["forget_nll"] + 0.2, [r["forget_nll"] for r in rows]


def test_pdu_resume_continues_the_dual_variable_exactly(tmp_path, tiny_model_dir, monkeypatch):
    settings = {"method": "pdu", "train.max_steps": 4, "train.checkpoint_every": 2}
    settings |= {"objective": "{pdu: {eps: 0.0, dual_lr: 0.5}}"}  # lambda moves every step
    straight = train(tiny_run_config(tmp_path / "a", tiny_model_dir, **settings), tmp_path / "a" / "run")
    cfg = tiny_run_config(tmp_path / "b", tiny_model_dir, **settings)
    train_until_checkpoint(cfg, tmp_path / "b" / "run", monkeypatch)
    saved = json.loads((ckpt.latest_checkpoint(tmp_path / "b" / "run") / "state.json").read_text())
    assert saved["terms"]["pdu"]["dual"] == straight.history[1]["pdu_dual"]
    resumed = train(cfg, tmp_path / "b" / "run", resume=True)
    duals = [r["pdu_dual"] for r in straight.history]
    assert len(set(duals)) == 4  # it moved at every step
    assert [r["pdu_dual"] for r in resumed.history] == duals
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_yao_with_k_answers_resumes_exactly(tmp_path, tiny_model_dir, monkeypatch):
    settings = {"method": "yao", "train.max_steps": 4, "train.checkpoint_every": 2}
    settings |= {"objective": "{ga: 0.5, mismatch: {k: 3}, kl: 1}"}
    straight = train(tiny_run_config(tmp_path / "a", tiny_model_dir, **settings), tmp_path / "a" / "run")
    cfg = tiny_run_config(tmp_path / "b", tiny_model_dir, **settings)
    train_until_checkpoint(cfg, tmp_path / "b" / "run", monkeypatch)
    resumed = train(cfg, tmp_path / "b" / "run", resume=True)
    assert [r["mismatch"] for r in resumed.history] == [r["mismatch"] for r in straight.history]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def unlearn(root, model_dir, **settings):
    settings = {"train.max_steps": 6, "train.batch_size": 4, "train.schedule": "constant", **settings}
    return train(tiny_run_config(root, model_dir, **settings), root / "run")


def test_gru_changes_only_the_steps_whose_gradient_conflicts_with_retain(tmp_path, taught_dir):
    plain = unlearn(tmp_path / "npo", taught_dir, method="npo").history
    rectified = unlearn(tmp_path / "gru", taught_dir, method="gru").history
    conflicts = [r["gru_cos"] < 0 for r in rectified]
    assert any(conflicts) and not all(conflicts), [r["gru_cos"] for r in rectified]
    first = conflicts.index(True)
    for a, b in zip(plain[:first], rectified[:first]):  # no projection yet: the same steps
        # (up to rounding: gru's forget rows run in one forward with its retain rows, and Adam
        # carries it on: 0, 1.8e-6 and 5e-5 relative over the first three steps)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=2e-4)
    assert rectified[first]["grad_norm"] != pytest.approx(plain[first]["grad_norm"], rel=1e-4)


def test_sam_with_a_vanishing_rho_takes_the_plain_step(tmp_path, taught_dir):
    """The forget gradient kept apart, taken again at w + ~0 and added back equals npo+rt's."""
    plain = unlearn(tmp_path / "plain", taught_dir, method="npo+rt").history
    tiny_rho = unlearn(tmp_path / "sam", taught_dir, method="sam", **{"train.sam_rho": 1e-9}).history
    assert [r["grad_norm"] for r in tiny_rho] == pytest.approx([r["grad_norm"] for r in plain], rel=1e-4)
    sharp = unlearn(tmp_path / "sharp", taught_dir, method="sam", **{"train.sam_rho": 0.05}).history
    assert sharp[0]["sam_loss"] > sharp[0]["npo"]  # eps points up the forget loss
    assert sharp[-1]["grad_norm"] != pytest.approx(plain[-1]["grad_norm"], rel=1e-3)


def test_sam_keeps_term_state_from_the_pass_at_w(tmp_path, tiny_model_dir):
    settings = {"method": "pdu", "train.sam_rho": 0.01, "train.max_steps": 3, "train.grad_accum": 2}
    rows = train(tiny_run_config(tmp_path, tiny_model_dir, **settings), tmp_path / "run").history
    # one dual update per micro-batch at w (logged: the mean over the step's two micro-batches);
    # counting the perturbed pass's too would give [1.5, 5.5, 9.5]
    assert [r["pdu_updates"] for r in rows] == [1.5, 3.5, 5.5]


@pytest.mark.parametrize("method", ["gru", "sam"])
def test_gru_and_sam_resume_exactly(tmp_path, taught_dir, monkeypatch, method):
    settings = {"method": method, "train.max_steps": 6, "train.batch_size": 4, "train.checkpoint_every": 3}
    straight = train(tiny_run_config(tmp_path / "a", taught_dir, **settings), tmp_path / "a" / "run")
    cfg = tiny_run_config(tmp_path / "b", taught_dir, **settings)
    train_until_checkpoint(cfg, tmp_path / "b" / "run", monkeypatch)
    saved = ckpt.latest_checkpoint(tmp_path / "b" / "run")
    assert (saved / "terms.safetensors").is_file() == (method == "gru")  # gru's average retain gradient
    resumed = train(cfg, tmp_path / "b" / "run", resume=True)
    for key in ("loss", "grad_norm", "forget_nll"):
        assert [r[key] for r in resumed.history] == [r[key] for r in straight.history], key
    if method == "gru":
        assert any(r["gru_cos"] < 0 for r in straight.history[3:])  # projected after the resume
