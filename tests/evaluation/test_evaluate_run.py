import json
import shutil

import pytest
import yaml

from lm_unlearn.data import Record
from lm_unlearn.evaluation.run import evaluate_run
from lm_unlearn.methods.icu import build_wrapper, save_wrapper
from lm_unlearn.models import load_model, save_model, wrap_lora


def make_run(tmp_path, source_dir, cfg, kind: str):
    """A finished run directory as the engine leaves it, with the tiny model."""
    run = tmp_path / f"run-{kind}"
    run.mkdir()
    data = {role: {"path": getattr(cfg, role).path, "limit": 4} for role in ("forget", "retain", "heldout")}
    config = {"model": {"name": str(source_dir), "template": "auto", "system_prompt": None}, "data": data}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    manifest = {"status": "finished", "config": config, "source_model": {"spec": str(source_dir)}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    rows = [{"step": 1, "tokens": 100, "elapsed_s": 1.5}, {"step": 2, "tokens": 120, "elapsed_s": 3.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = load_model(str(source_dir))
    n_params = sum(p.numel() for p in lm.model.parameters())  # before LoRA adds its own
    if kind == "model":
        shutil.copytree(source_dir, run / "model")
    elif kind == "icu":  # in-context unlearning: no weights, a prompt wrapper
        save_wrapper(
            build_wrapper([Record("Who is Tom?", "A cat.", "forget:0")], ["I don't know."]), run / "icu.json"
        )
    else:
        save_model(wrap_lora(lm.model, 2, 4, 0.0, "all-linear"), lm.tokenizer, run / "adapter")
    return run, n_params


@pytest.mark.parametrize("kind", ["model", "adapter"])
def test_evaluate_run_writes_eval_and_report(tmp_path, tiny_model_dir, cfg, kind):
    run, n_params = make_run(tmp_path, tiny_model_dir, cfg, kind)
    report = evaluate_run(run)
    assert report == run / "report.html"
    result = json.loads((run / "eval.json").read_text())
    assert result["info"]["models"]["original"] == str(tiny_model_dir)
    assert result["info"]["sets"]["forget"] == 4  # the run's own data settings
    cost = result["run_cost"]
    assert cost["steps"] == 2 and cost["train_wall_s"] == 3.0 and cost["train_tokens"] == 220
    assert cost["train_flops_estimate"] == 6 * n_params * 220
    html = report.read_text()
    assert "train_flops_estimate" in html and '<section id="forget">' in html
    # A fresh LoRA adapter (B = 0) or a copy is the original itself: identical behaviour.
    assert result["metrics"]["model"]["retain.kl_to_original"] == pytest.approx(0.0, abs=1e-6)


def test_an_icu_run_is_evaluated_as_the_original_behind_its_prompt_wrapper(tmp_path, tiny_model_dir, cfg):
    run, _ = make_run(tmp_path, tiny_model_dir, cfg, "icu")
    evaluate_run(run)
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    # Same weights, other prompts: the wrapper changes what the model is scored on ...
    assert metrics["model"]["forget.nll"] != pytest.approx(metrics["original"]["forget.nll"], abs=1e-6)
    # ... and there is no same-token KL to the original to report.
    assert "retain.kl_to_original" not in metrics["model"]
