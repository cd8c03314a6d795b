"""A short run of each recipe on the tiny model moves it the way the method intends."""

import json

import pytest
import torch
from support.runs import forget_nll
from support.tiny import FORGET_ROWS, tiny_run_config

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.data.sampling import read_refusals
from lm_unlearn.engine import train
from lm_unlearn.models import load_model
from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.terms.rmu import control_vector

WHP = {"objective": "{whp: {reinforce_steps: 4, reinforce_lr: 0.01}}"}
# SimNPO's default beta=2.5 saturates the sigmoid on a random model (NLL ~ log 400 per token),
# so its gradient is ~0 there; a small beta keeps it in the working range.
SIMNPO = {"objective": "{simnpo: {beta: 0.1}}"}


def run(tmp_path, model_dir, **settings):
    return train(tiny_run_config(tmp_path, model_dir, **settings), tmp_path / "run")


@pytest.mark.parametrize(
    "method,mode,extra",
    [
        ("npo", "full", {}),
        ("npo", "lora", {}),
        ("npo+kl", "full", {}),
        ("npo+rt", "full", {}),
        ("simnpo", "full", SIMNPO),
        ("undial", "full", {}),
        ("task_vector", "full", {}),
        ("task_vector", "lora", {}),
        ("whp", "full", WHP),
    ],
)
def test_recipe_raises_the_forget_nll(tmp_path, tiny_model_dir, method, mode, extra):
    result = run(tmp_path, tiny_model_dir, method=method, **{"train.mode": mode}, **extra)
    assert forget_nll(result.run_dir / "model") > forget_nll(tiny_model_dir) + 0.02


def test_task_vector_negates_after_fine_tuning(tmp_path, tiny_model_dir):
    result = run(tmp_path, tiny_model_dir, method="task_vector")
    nlls = [row["forget_nll"] for row in result.history]
    assert nlls[-1] < nlls[0]  # during the run it fine-tunes toward the forget set
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["post_phase"]["task_vector"] == {"alpha": 1.0, "applied_to": "full"}


def answer_minus_refusal_nll(model_dir) -> float:
    """Mean over forget prompts of NLL(true answer) - NLL(first refusal)."""
    loaded = load_model(str(model_dir))
    fmt = PromptFormat.choose(loaded.tokenizer, "auto")
    refusal = read_refusals()[0]
    means = []
    for answer in (None, refusal):
        records = [Record(r["prompt"], answer or r["response"], "x") for r in FORGET_ROWS]
        batch = collate(encode_records(records, fmt, 64), loaded.tokenizer.pad_token_id)
        with torch.no_grad():
            logits = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        means.append(Outputs(logits, batch).mean_nll.mean().item())
    return means[0] - means[1]


@pytest.mark.parametrize("method", ["idk", "dpo"])
def test_refusal_methods_make_refusals_likelier_than_answers(tmp_path, tiny_model_dir, method):
    result = run(tmp_path, tiny_model_dir, method=method, **{"train.max_steps": 6})
    assert answer_minus_refusal_nll(result.run_dir / "model") > answer_minus_refusal_nll(tiny_model_dir) + 0.1


def forget_distance_to_target(model_dir, coef: float) -> float:
    loaded = load_model(str(model_dir))
    fmt = PromptFormat.choose(loaded.tokenizer, "auto")
    records = [Record(r["prompt"], r["response"], "x") for r in FORGET_ROWS]
    batch = collate(encode_records(records, fmt, 64), loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        out = loaded.model(batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    h = out.hidden_states[1][batch.attention_mask.bool()]  # output of decoder layer 0
    return (h - control_vector(h.shape[-1], coef, seed=0)).norm(dim=-1).mean().item()


def test_rmu_moves_forget_activations_toward_the_target(tmp_path, tiny_model_dir):
    settings = {
        "objective": "{rmu: {steering_coef: 2.0, alpha: 1.0, update_params: mlp}}",
        "train.max_steps": 10,
        "train.lr": 0.05,
        "train.schedule": "constant",
    }
    result = run(tmp_path, tiny_model_dir, **settings)
    before = forget_distance_to_target(tiny_model_dir, 2.0)
    after = forget_distance_to_target(result.run_dir / "model", 2.0)
    assert after < 0.9 * before
