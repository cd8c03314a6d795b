"""undo (Lee et al. 2025): the noise formula by hand, and a tiny run end to end
(the distill term by hand: tests/objectives/test_distill.py)."""

import json
import math

import pytest
import torch
import yaml
from support.runs import changed, forget_logits, forget_nll, weights
from support.tiny import tiny_run_config

from lm_unlearn.api import unlearn
from lm_unlearn.data.records import read_records
from lm_unlearn.files import sha256_tree
from lm_unlearn.methods.undo import shrink_perturb
from lm_unlearn.methods.undo_text import record_row, sample_texts
from lm_unlearn.objectives.terms.kl import kl_divergence

# torch.Generator().manual_seed(0): the first four standard normals drawn.
RANDN_SEED0 = [1.5410, -0.2934, -2.1788, 0.5684]


def test_shrink_perturb_by_hand():
    layer = torch.nn.Linear(2, 1, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.bias.copy_(torch.tensor([3.0]))
    shrink_perturb(layer, alpha=0.25, beta=0.5, sigma=2.0, seed=0)
    # theta_s = 0.75 * theta + 0.25 * 0.5 * (2 * z): weight takes z[0:2], bias z[2] (draw order)
    z = RANDN_SEED0
    expected_weight = [0.75 * 1.0 + 0.25 * z[0], 0.75 * 2.0 + 0.25 * z[1]]
    assert layer.weight.flatten().tolist() == pytest.approx(expected_weight, abs=1e-4)
    assert layer.bias.item() == pytest.approx(0.75 * 3.0 + 0.25 * z[2], abs=1e-4)


def test_shrink_perturb_limits_and_seed():
    def noised(alpha, beta, seed):
        layer = torch.nn.Linear(3, 3)
        with torch.no_grad():
            layer.weight.fill_(1.0)
        shrink_perturb(layer, alpha, beta, sigma=1.0, seed=seed)
        return layer.weight.detach().clone()

    assert torch.equal(noised(0.0, 1.0, 0), torch.ones(3, 3))  # alpha 0 keeps the weights
    assert torch.equal(noised(1.0, 0.0, 0), torch.zeros(3, 3))  # alpha 1, beta 0: all gone
    assert torch.equal(noised(0.5, 1.0, 7), noised(0.5, 1.0, 7))
    assert not torch.equal(noised(0.5, 1.0, 7), noised(0.5, 1.0, 8))


UNDO_SETTINGS = {
    "method": "undo",
    "undo.alpha": 0.5,
    "undo.distill_steps": 6,
    "undo.distill_texts": 3,
    "undo.distill_text_tokens": 6,
    "train.eval_every": 0,
}


@pytest.fixture(scope="module")
def undo_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("undo")
    before = sha256_tree(tiny_model_dir)
    cfg = tiny_run_config(tmp, tiny_model_dir, **UNDO_SETTINGS)
    result = unlearn(cfg, tmp / "run")
    return cfg, result, tmp / "run", before


def test_undo_saves_the_distilled_student_which_forgets(undo_run, tiny_model_dir):
    _, result, run, before = undo_run
    assert sha256_tree(tiny_model_dir) == before  # the source model is not touched
    final, teacher = weights(run / "model"), weights(run / "phases" / "unlearn" / "model")
    assert not changed(final, weights(run / "phases" / "distill" / "model"))
    assert changed(final, teacher) and changed(final, weights(tiny_model_dir))
    assert changed(final, weights(run / "phases" / "student"))  # distillation moved it
    assert forget_nll(run / "model") > forget_nll(tiny_model_dir)
    assert result.steps == 4 + 6 and {r["phase"] for r in result.history} == {"unlearn", "distill"}
    teacher_logits, batch = forget_logits(run / "phases" / "unlearn" / "model")

    def kl_to_teacher(model_dir):
        return kl_divergence(teacher_logits, forget_logits(model_dir)[0], batch.attention_mask).item()

    assert kl_to_teacher(run / "model") < kl_to_teacher(run / "phases" / "student")  # toward the teacher


def test_undo_manifest_records_the_phases(undo_run, tiny_model_dir):
    _, _, run, _ = undo_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kind"] == "undo" and manifest["status"] == "finished"
    assert manifest["source_model"]["spec"] == str(tiny_model_dir)
    unlearn_, noise, data, distill = manifest["phases"]
    assert [p["phase"] for p in manifest["phases"]] == ["unlearn", "noise", "distill data", "distill"]
    assert data["path"] == "phases/distill-retain.jsonl" and data["settings"]["sampled_texts"] == 3
    assert unlearn_["objective"] == "1*npo + 1*retain_nll" and unlearn_["steps"] == 4
    assert noise["alpha"] == 0.5 and noise["beta"] == 0.1 and noise["seed"] == 0
    assert math.isclose(noise["sigma"], 0.02) and noise["student_from"] == "unlearned"
    assert distill["objective"] == "1*distill" and distill["steps"] == 6
    assert distill["started_from"] == str(run / "phases" / "student")
    assert manifest["outputs"]["model"]["sha256"] == sha256_tree(run / "model")


def test_undo_distils_on_the_retain_records_and_the_teachers_samples(undo_run):
    cfg, _, run, _ = undo_run
    rows = [json.loads(line) for line in (run / "phases" / "distill-retain.jsonl").read_text().splitlines()]
    retain = read_records(cfg.data.retain, "retain")
    assert rows[: len(retain)] == [record_row(r) for r in retain]
    texts = rows[len(retain) :]
    record = json.loads((run / "phases" / "distill-data.json").read_text())
    assert 1 <= len(texts) == record["sampled_texts"] <= 3 and record["retain_records"] == len(retain)
    assert all(set(row) == {"text"} and row["text"].strip() for row in texts)
    distill = yaml.safe_load((run / "phases" / "distill" / "config.yaml").read_text())
    assert distill["data"]["retain"]["path"] == str(run / "phases" / "distill-retain.jsonl")
    assert distill["train"]["eval_every"] == 0  # no stop rule; the noised student is no baseline


def test_sample_texts_are_reproducible_and_leave_the_random_state(tiny_model_dir):
    from lm_unlearn.models import load_model

    loaded = load_model(str(tiny_model_dir))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = sample_texts(loaded.model, loaded.tokenizer, 3, 5, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert sample_texts(loaded.model, loaded.tokenizer, 3, 5, seed=1) == first
    assert sample_texts(loaded.model, loaded.tokenizer, 3, 5, seed=2) != first


def test_undo_run_leaves_out_the_unlearn_phases_validation_records(tmp_path, tiny_model_dir):
    split = {"train.validation.forget": 1, "train.validation.retain": 1}
    settings = {
        **UNDO_SETTINGS,
        **split,
        "train.eval_every": 2,
        "train.max_steps": 2,
        "undo.distill_steps": 1,
    }
    unlearn(tiny_run_config(tmp_path, tiny_model_dir, **settings), tmp_path / "run")
    held = tmp_path / "run" / "phases" / "unlearn" / "validation.json"
    assert all(json.loads(held.read_text()).values())  # the unlearn phase held records out ...
    assert (
        tmp_path / "run" / "validation.json"
    ).read_text() == held.read_text()  # ... the evaluation skips them
    distill = json.loads((tmp_path / "run" / "phases" / "distill" / "validation.json").read_text())
    assert distill == {"forget": [], "retain": []}  # the distil phase holds nothing out


def test_undo_cost_adds_up_its_training_phases(undo_run):
    from lm_unlearn.evaluation.cost import run_cost

    _, result, run, _ = undo_run
    cost = run_cost(run)
    assert cost["steps"] == 4 + 6 == result.steps  # the benchmark's `kept step` column for undo
    walls = [json.loads((run / "phases" / p / "metrics.jsonl").read_text().splitlines()[-1])["elapsed_s"]
             for p in ("unlearn", "distill")]  # fmt: skip
    assert cost["train_wall_s"] == pytest.approx(sum(walls)) and cost["train_tokens"] > 0
    assert cost["train_peak_rss_bytes"] > 0


def test_undo_resumed_after_finishing_retrains_nothing(undo_run):
    cfg, _, run, _ = undo_run
    model = sha256_tree(run / "model")
    again = unlearn(cfg, run, resume=True)
    assert again.history == [] and again.steps == 10
    assert sha256_tree(run / "model") == model


def test_undo_interrupted_in_distillation_resumes_there(tmp_path, tiny_model_dir, undo_run, monkeypatch):
    from lm_unlearn import checkpoint as ckpt

    cfg = tiny_run_config(tmp_path, tiny_model_dir, **UNDO_SETTINGS, **{"train.checkpoint_every": 2})
    real_save = ckpt.save_checkpoint

    def crash_in_distill(run_dir, step, *args, **kwargs):
        real_save(run_dir, step, *args, **kwargs)
        if run_dir.name == "distill" and step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", crash_in_distill)
    with pytest.raises(KeyboardInterrupt):
        unlearn(cfg, tmp_path / "run")
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    result = unlearn(cfg, tmp_path / "run", resume=True)
    assert {r["phase"] for r in result.history} == {"distill"}  # the unlearn phase is not redone
    distill = json.loads((tmp_path / "run" / "phases" / "distill" / "manifest.json").read_text())
    assert [r["step"] for r in distill["resumed_at"]] == [4]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumed_at"]) == 1
    uninterrupted = weights(undo_run[2] / "model")
    for name, value in weights(tmp_path / "run" / "model").items():
        torch.testing.assert_close(value, uninterrupted[name])
