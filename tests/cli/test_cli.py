"""The `unlearn` command: bad input gets a clear message and exit code 2, and loses nothing."""

import json
from pathlib import Path

import pytest
import yaml
from support.tiny import tiny_run_config, write_jsonl
from typer.testing import CliRunner

from lm_unlearn.cli import app

runner = CliRunner()


def config_file(tmp_path, model_dir, **settings) -> Path:
    cfg = tiny_run_config(tmp_path, model_dir, **settings)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_methods_lists_terms_and_recipes():
    result = invoke("methods")
    assert result.exit_code == 0
    for name in ("yao", "ga", "graddiff", "mismatch", "kl", "retain_nll", "altpo"):
        assert name in result.output


def test_run_via_cli_with_set_overrides(tmp_path, tiny_model_dir):
    path = config_file(tmp_path, tiny_model_dir)
    result = invoke("run", path, "--set", "train.max_steps=2", "--set", "name=cli")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "cli"
    assert json.loads((run_dir / "manifest.json").read_text())["steps"] == 2
    # a second run into the same directory is refused, not overwritten
    again = invoke("run", path, "--set", "train.max_steps=2", "--set", "name=cli")
    assert again.exit_code == 2 and "already exists" in again.output and "--resume" in again.output


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"data.forget.path": "/nonexistent/forget.jsonl"}, "forget data file not found: /nonexistent"),
        ({"objective": "{ga: 1, nonsense: 1}"}, "unknown term 'nonsense'"),
        ({"method": "nope"}, "unknown method 'nope'"),
        ({"train.lr": "-1"}, "train.lr"),
        ({"model.name": "/nonexistent/model"}, "model path not found"),
        ({"model.template": "chat", "model.name": "PLAIN"}, "no chat template"),
        ({"data.overlong": "error", "data.max_length": 8}, "exceed data.max_length=8"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, tiny_model_dir, tiny_plain_model_dir, settings, message):
    settings = {k: (str(tiny_plain_model_dir) if v == "PLAIN" else v) for k, v in settings.items()}
    path = config_file(tmp_path, tiny_model_dir)
    args = ["run", path]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs" / "tiny" / "model").exists()


def test_a_bad_objective_names_the_config_file_and_writes_no_run(tmp_path, tiny_model_dir):
    path = config_file(tmp_path, tiny_model_dir, objective={"npo": {"weight": 1, "gamma": 2}})
    result = invoke("run", path)
    assert result.exit_code == 2
    assert f"error: {path}: objective.npo: gamma" in result.output
    assert not (tmp_path / "runs").exists()
    result = invoke("run", path, "--set", "objective=null", "--set", "method=nope")
    assert f"error: {path} + --set: unknown method 'nope'" in result.output


def test_empty_forget_set_and_missing_field(tmp_path, tiny_model_dir):
    path = config_file(tmp_path, tiny_model_dir)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = invoke("run", path, "--set", f"data.forget.path={empty}")
    assert result.exit_code == 2 and "has no records" in result.output
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "only"}])
    result = invoke("run", path, "--set", f"data.retain.path={bad}")
    assert result.exit_code == 2
    assert f"{bad}: line 2: missing field 'response'" in result.output


def test_terms_needing_normal_data_without_it(tmp_path, tiny_model_dir):
    path = config_file(tmp_path, tiny_model_dir)
    data = yaml.safe_load(path.read_text())
    del data["data"]["retain"]
    path.write_text(yaml.safe_dump(data))
    result = invoke("run", path)
    assert result.exit_code == 2 and "need normal data" in result.output


def test_resume_of_a_directory_that_is_not_a_run(tmp_path):
    result = invoke("run", "--resume", tmp_path)
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_run_ends_with_an_evaluation_report(tmp_path, tiny_model_dir):
    path = config_file(tmp_path, tiny_model_dir)
    result = invoke("run", path, "--set", "train.max_steps=1", "--set", "evaluate=true")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tiny"
    report = json.loads((run_dir / "eval.json").read_text())
    assert report and (run_dir / "report.html").read_text().startswith("<!")
    assert "report:" in result.output
