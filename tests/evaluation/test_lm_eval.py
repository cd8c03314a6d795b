"""lm-evaluation-harness tasks as utility (issue 20): the local task in lm_eval_task/ runs offline
on the tiny models through `unlearn eval`, and its scores in eval.json equal a hand computation
from the models' log-likelihoods."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from support.tiny import FORGET_ROWS, write_jsonl
from typer.testing import CliRunner

from lm_unlearn.cli.evaluate import register
from lm_unlearn.evaluation.config import lm_eval_installed
from lm_unlearn.models import load_model

TASK_DIR = Path(__file__).parent / "lm_eval_task"
DOCS = [json.loads(line) for line in (TASK_DIR / "tiny_mc.jsonl").read_text().splitlines()]
needs_lm_eval = pytest.mark.skipif(
    not lm_eval_installed(), reason="lm-eval is not installed: pip install 'lm-unlearn[lmeval]'"
)


def eval_cli(tmp_path, tiny_model_dir, original_dir, lm_eval: dict | None, *more: str):
    """`unlearn eval --metrics utility` with only a forget set and `lm_eval:` in its data config."""
    import typer

    forget = write_jsonl(tmp_path / "forget.jsonl", FORGET_ROWS)
    data = tmp_path / "data.yaml"
    data.write_text(
        yaml.safe_dump({"forget": {"path": str(forget)}, "precision": "fp32", "lm_eval": lm_eval})
    )
    app = typer.Typer()
    register(app)
    args = ["eval", "--model", str(tiny_model_dir), "--original", str(original_dir), "--data", str(data)]
    args += ["--out", str(tmp_path / "out"), "--metrics", "utility", *more]
    return CliRunner().invoke(app, args)


def answer_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """log P(continuation | context), split into tokens as lm-eval's HFLM does: the whole text's
    tokens past the context's."""
    whole = tokenizer(context + continuation)["input_ids"]
    start = len(tokenizer(context)["input_ids"])
    with torch.no_grad():
        logp = model(torch.tensor([whole])).logits.float().log_softmax(-1)[0]
    return float(sum(logp[i - 1, whole[i]] for i in range(start, len(whole))))


def by_hand(model_dir, docs=DOCS) -> tuple[float, float]:
    """(tiny_mc accuracy, tiny_ll perplexity) on `docs` from the model's log-likelihoods. The
    fourth question's true answer is far shorter than the false one, so even a random model
    (summed log-probabilities) picks it: the tiny models score 0.25, not a trivial 0."""
    lm = load_model(str(model_dir))
    correct, answer_lls = 0, []
    for doc in docs:
        context = f"Question: {doc['question']}\nAnswer:"
        lls = [answer_logprob(lm.model, lm.tokenizer, context, " " + c) for c in doc["choices"]]
        correct += int(np.argmax(lls) == doc["answer"])
        answer_lls.append(lls[doc["answer"]])
    return correct / len(docs), math.exp(-float(np.mean(answer_lls)))


@needs_lm_eval
def test_a_local_lm_eval_task_scores_both_models_offline(
    tmp_path, tiny_model_dir, other_tiny_dirs, monkeypatch
):
    monkeypatch.chdir(TASK_DIR)  # the tasks' data_files are relative to the working directory
    result = eval_cli(tmp_path, tiny_model_dir, other_tiny_dirs[0], {"tasks": [str(TASK_DIR)], "limit": 10})
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    for role, model_dir in (("model", tiny_model_dir), ("original", other_tiny_dirs[0])):
        acc, ppl = by_hand(model_dir)
        metrics = saved["metrics"][role]
        assert metrics["utility.lm_eval.tiny_mc.acc"] == pytest.approx(acc), role
        assert metrics["utility.lm_eval.tiny_ll.perplexity"] == pytest.approx(ppl, rel=1e-4), role
    assert saved["info"]["definitions"]["lm_eval"]["tasks"] == [str(TASK_DIR)]
    assert "model.lm_eval" in saved["info"]["eval_cost"]["phases_s"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<section id="utility">' in html and "utility.lm_eval.tiny_ll.perplexity" in html


@needs_lm_eval
def test_a_task_yaml_file_and_the_limit(tmp_path, tiny_model_dir, other_tiny_dirs, monkeypatch):
    monkeypatch.chdir(TASK_DIR)
    result = eval_cli(tmp_path, tiny_model_dir, other_tiny_dirs[0], {"tasks": ["tiny_mc.yaml"], "limit": 1})
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "eval.json").read_text())["metrics"]["model"]
    names = {k for k in metrics if k.startswith("utility.lm_eval.")}
    # Only the named task, on its first question; lm-eval's stderr of one item is N/A, left out.
    assert (
        "utility.lm_eval.tiny_mc.acc"
        in names
        <= {"utility.lm_eval.tiny_mc.acc", "utility.lm_eval.tiny_mc.acc_stderr"}
    )
    assert metrics["utility.lm_eval.tiny_mc.acc"] == by_hand(tiny_model_dir, DOCS[:1])[0]


@needs_lm_eval
def test_the_lm_eval_option_of_unlearn_eval(tmp_path, tiny_model_dir, other_tiny_dirs, monkeypatch):
    monkeypatch.chdir(TASK_DIR)
    result = eval_cli(tmp_path, tiny_model_dir, other_tiny_dirs[0], None, "--lm-eval", "tiny_ll.yaml")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "eval.json").read_text())["metrics"]["model"]
    assert metrics["utility.lm_eval.tiny_ll.perplexity"] == pytest.approx(
        by_hand(tiny_model_dir)[1], rel=1e-4
    )


def test_without_the_extra_asking_for_tasks_says_how_to_install(
    tmp_path, tiny_model_dir, other_tiny_dirs, monkeypatch
):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if not installed
    result = eval_cli(tmp_path, tiny_model_dir, other_tiny_dirs[0], {"tasks": ["arc_easy"]})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'lm-unlearn[lmeval]'" in lines[0], result.output
    assert not (tmp_path / "out").exists()


@needs_lm_eval
def test_the_originals_scores_are_cached_and_follow_the_task_files(
    tmp_path, tiny_model_dir, other_tiny_dirs, monkeypatch
):
    import shutil

    from lm_unlearn.config import DatasetConfig
    from lm_unlearn.evaluation import EvalConfig, evaluate, load_eval_data

    monkeypatch.setenv("LM_UNLEARN_CACHE", str(tmp_path / "cache"))
    tasks = shutil.copytree(TASK_DIR, tmp_path / "tasks")
    monkeypatch.chdir(tasks)
    forget = write_jsonl(tmp_path / "forget.jsonl", FORGET_ROWS)
    cfg = EvalConfig(
        forget=DatasetConfig(path=str(forget)),
        metrics=["utility"],
        precision="fp32",
        lm_eval={"tasks": ["tiny_ll.yaml"]},
    )

    def run():
        return evaluate(str(tiny_model_dir), load_eval_data(cfg), cfg, original=str(other_tiny_dirs[0]))

    first, second = run(), run()
    assert second["info"]["eval_cost"]["original_from_cache"]
    name = "utility.lm_eval.tiny_ll.perplexity"
    assert second["metrics"]["original"][name] == first["metrics"]["original"][name]
    (tasks / "tiny_mc.jsonl").write_text((TASK_DIR / "tiny_mc.jsonl").read_text().replace("Paris", "Lyon"))
    third = run()
    assert not third["info"]["eval_cost"]["original_from_cache"]
    assert third["metrics"]["original"][name] != first["metrics"]["original"][name]
