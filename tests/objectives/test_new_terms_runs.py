"""wga, satimp, ce_u and pdu through train() on the tiny model: forget NLL rises; pdu and yao's
k-answer mismatch resume exactly."""

import json

import pytest
from tiny import tiny_run_config, train_until_checkpoint

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


@pytest.mark.parametrize("method", ["wga", "satimp", "ce_u", "pdu"])
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
