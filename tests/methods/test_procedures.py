"""icu (prompt wrapper, no training), sequential requests, and every method through the CLI."""

import json

import pytest
import yaml
from support.runs import changed, forget_nll, weights
from support.tiny import FORGET_ROWS, tiny_run_config, write_jsonl
from typer.testing import CliRunner

from lm_unlearn.api import unlearn
from lm_unlearn.cli import app
from lm_unlearn.methods.icu import INSTRUCTION, load_wrapper
from lm_unlearn.objectives.registry import RECIPES, _load_builtin_terms

ALL = ["ga", "yao", "graddiff", "npo", "npo+kl", "npo+rt", "simnpo", "idk", "dpo", "rmu", "undial"]
ALL += ["task_vector", "whp", "icu", "altpo", "undo"]


def test_icu_writes_a_prompt_wrapper_and_changes_nothing(tmp_path, tiny_model_dir):
    result = unlearn(tiny_run_config(tmp_path, tiny_model_dir, method="icu"), tmp_path / "run")
    assert result.steps == 0 and not (tmp_path / "run" / "model").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "no weights" in manifest["warning"]
    wrapper = load_wrapper(tmp_path / "run")
    wrapped = wrapper("Where does Harry live?")
    assert wrapped.startswith(INSTRUCTION) and wrapped.endswith("Q: Where does Harry live?")
    assert FORGET_ROWS[0]["prompt"] in wrapped and FORGET_ROWS[0]["response"] not in wrapped
    assert load_wrapper(tmp_path) is None


def test_sequential_requests_apply_in_order_with_a_manifest_entry_each(tmp_path, tiny_model_dir):
    first = write_jsonl(tmp_path / "r0.jsonl", FORGET_ROWS[:2])
    second = write_jsonl(tmp_path / "r1.jsonl", FORGET_ROWS[2:])
    requests = f"[{{path: {first}}}, {{path: {second}}}]"
    cfg = tiny_run_config(tmp_path, tiny_model_dir, method="npo", **{"data.requests": requests})
    result = unlearn(cfg, tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    entries = manifest["requests"]
    assert [e["forget"]["records"] for e in entries] == [2, 2]
    assert entries[0]["started_from"] == str(tiny_model_dir)
    assert entries[1]["started_from"] == str(tmp_path / "run" / "requests" / "00" / "model")
    assert result.steps == 8 and {r["request"] for r in result.history} == {0, 1}
    final = tmp_path / "run" / "model"
    assert not changed(weights(final), weights(tmp_path / "run" / "requests" / "01" / "model"))
    assert forget_nll(final) > forget_nll(tiny_model_dir)
    # resuming a finished sequence retrains nothing
    again = unlearn(cfg, tmp_path / "run", resume=True)
    assert again.steps == 8 and again.history == []


def test_methods_command_lists_every_method_with_a_summary():
    _load_builtin_terms()
    output = CliRunner().invoke(app, ["methods"]).output
    for name in ALL:
        assert name in RECIPES
        assert f"  {name} " in output and RECIPES[name].summary in output


@pytest.mark.parametrize("method", ALL)
def test_each_method_runs_from_the_cli(tmp_path, tiny_model_dir, method):
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.max_steps": 2})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    args = ["run", str(path), "--set", f"method={method}", "--set", "name=m"]
    if method == "whp":
        args += ["--set", "objective={whp: {reinforce_steps: 2, reinforce_lr: 0.01}}"]
    if method == "altpo":  # short alternates: the tiny model's answers are noise anyway
        args += ["--set", "objective={altpo: {max_new_tokens: 16}, retain_nll: 1}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "runs" / "m" / "manifest.json").read_text())
    assert manifest["status"] == "finished"
