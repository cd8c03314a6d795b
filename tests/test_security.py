"""Hostile and broken inputs (issue 15): config files, run directories and model directories are
not trusted; only the user's command-line flags are."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from tiny import tiny_run_config
from typer.testing import CliRunner

from lm_unlearn.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


MODELING = """
from pathlib import Path

Path({marker!r}).write_text("custom model code ran")

from transformers import LlamaForCausalLM


class MarkerModel(LlamaForCausalLM):
    pass
"""


@pytest.fixture
def marker_model(tmp_path, tiny_model_dir):
    """The tiny model with a custom module (auto_map) that writes a marker file when imported."""
    model = tmp_path / "marker-model"
    shutil.copytree(tiny_model_dir, model)
    marker = tmp_path / "MARKER"
    (model / "modeling_marker.py").write_text(MODELING.format(marker=str(marker)))
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_marker.MarkerModel"}
    (model / "config.json").write_text(json.dumps(config))
    return model, marker


def write_config(tmp_path, model_dir, **settings) -> Path:
    cfg = tiny_run_config(tmp_path, model_dir, **settings)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


def test_remote_code_needs_the_flag_on_resume(tmp_path, marker_model):
    model, marker = marker_model
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    data = yaml.safe_load(write_config(tmp_path, model).read_text())
    data["model"]["trust_remote_code"] = True  # as a hostile or old run directory holds it
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data))
    (run_dir / "manifest.json").write_text(json.dumps({"status": "running"}))
    result = invoke("run", "--resume", run_dir)
    assert result.exit_code == 2, result.output
    assert "--trust-remote-code" in result.output and "config.yaml" in result.output
    assert not marker.exists()


def test_remote_code_in_a_config_or_set_is_refused(tmp_path, marker_model):
    model, marker = marker_model
    path = write_config(tmp_path, model)
    result = invoke("run", path, "--set", "model.trust_remote_code=true")
    assert result.exit_code == 2 and "--trust-remote-code" in result.output
    assert not marker.exists() and not (tmp_path / "runs" / "tiny").exists()


def test_eval_of_a_model_with_custom_code_does_not_run_it(tmp_path, marker_model):
    model, marker = marker_model
    invoke("eval", "--model", model, "--metrics", "likelihood", "--out", tmp_path / "ev")
    assert not marker.exists()


def test_the_flag_runs_the_code(tmp_path, marker_model, monkeypatch):
    """The check above is meaningful: with the user's flag the marker module does run."""
    import transformers.dynamic_module_utils as dyn

    from lm_unlearn.models import load_model, remote_code

    monkeypatch.setattr(dyn, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    model, marker = marker_model
    load_model(str(model))
    assert not marker.exists()
    with remote_code(True):
        load_model(str(model))
    assert marker.exists()


@pytest.mark.parametrize("name", ["../x/../../y", "/abs/path", "..", "a/b", "a\\b", "x\ny", ""])
def test_run_name_is_one_plain_path_component(tmp_path, tiny_model_dir, name):
    path = write_config(tmp_path, tiny_model_dir)
    result = invoke("run", path, "--set", f"name={name!r}" if name else "name=''")
    assert result.exit_code == 2, result.output
    assert "name" in result.output and "Traceback" not in result.output
    written = {p for p in tmp_path.rglob("*")} - {p for p in tmp_path.iterdir()}
    assert not any(p.name in ("config.yaml", "manifest.json") for p in written)


def test_run_name_that_is_a_link_out_of_output_dir(tmp_path, tiny_model_dir):
    path = write_config(tmp_path, tiny_model_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "linked").symlink_to(outside)
    result = invoke("run", path, "--set", "name=linked")
    assert result.exit_code == 2 and "outside output_dir" in result.output
    assert not any(outside.iterdir())


MARKER = "Zqxv7731Marker"


def test_redaction_leaves_no_forget_text_in_any_written_file(tmp_path, tiny_model_dir, monkeypatch):
    """A unique marker in the forget data (and the judge's patterns and stop strings, which repeat
    it as a scenario's judge does) appears in no file the run, evaluation, report or cache write."""
    from tiny import write_jsonl

    monkeypatch.setenv("LM_UNLEARN_CACHE", str(tmp_path / "cache"))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    forget = write_jsonl(
        inputs / "secret.jsonl",
        [
            {"prompt": f"What is {MARKER}'s e-mail?", "response": f"It is {MARKER}@example.org."},
            {"prompt": "Where does the person live?", "response": f"At 12 {MARKER} Street."},
        ],
    )
    path = write_config(tmp_path / "cfg", tiny_model_dir)
    args = ["--set", f"data.forget.path={forget}", "--set", "train.max_steps=1", "--set", "evaluate=true"]
    result = invoke("run", path, *args, "--set", "redact=true", "--set", f"output_dir={tmp_path / 'runs'}")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tiny"
    eval_yaml = inputs / "eval.yaml"
    eval_yaml.write_text(
        yaml.safe_dump(
            {
                "forget": {"path": str(forget)},
                "judge": {"kind": "keyword", "patterns": [f"(?i){MARKER}"]},
                "stop": [MARKER],
            }
        )
    )
    result = invoke("eval", "--model", run_dir, "--data", eval_yaml, "--redact")
    assert result.exit_code == 0, result.output
    result = invoke("eval", "--model", run_dir, "--data", eval_yaml, "--redact", "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output

    cached = list((tmp_path / "cache" / "eval").glob("*.json"))
    assert cached and all(json.loads(p.read_text())["scores_only"] for p in cached)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and inputs not in p.parents]
    assert len(written) > 10 and (tmp_path / "ev" / "eval.json") in written
    leaks = [p for p in written if MARKER.lower().encode() in p.read_bytes().lower()]
    assert not leaks
    info = json.loads((run_dir / "eval.json").read_text())["info"]
    assert info["redacted"] and info["config"]["judge"]["patterns"][0].startswith("[redacted")


@pytest.mark.parametrize("name", ["../outside.jsonl", "ABSOLUTE", "link.jsonl", "missing.jsonl"])
def test_prepare_reads_only_files_inside_the_scenario_directory(tmp_path, name):
    from lm_unlearn.benchmark import prepare as prep
    from lm_unlearn.errors import DataError
    from lm_unlearn.scenarios import make

    data = make("knowledge", tmp_path / "k", seed=0, people=10)
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"prompt": "secret?", "response": "taught from outside"}\n')
    (data / "link.jsonl").symlink_to(outside)
    name = str(outside) if name == "ABSOLUTE" else name
    meta = json.loads((data / "scenario.json").read_text())
    meta["files"][name] = {"role": "learn"}
    (data / "scenario.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="scenario.json: files: .*(plain file name|not a file inside)"):
        prep.split_learn(data)


def test_prepare_copies_no_links(tmp_path, tiny_model_dir, monkeypatch):
    from lm_unlearn.benchmark import prepare as prep
    from lm_unlearn.scenarios import make

    data = make("knowledge", tmp_path / "k", seed=0, people=10)
    (tmp_path / "private.txt").write_text("not part of the scenario")
    (data / "notes.txt").symlink_to(tmp_path / "private.txt")
    monkeypatch.setattr(prep, "teach_model", lambda *a, **k: {})
    prepared = prep.prepare(str(data), model=str(tiny_model_dir), cache_root=tmp_path / "c")
    assert (prepared.data_dir / "forget.jsonl").is_file()
    assert not (prepared.data_dir / "notes.txt").exists()


BUILDER = """
import sys, time
from pathlib import Path
from lm_unlearn.files import atomic_directory

target, started, go = map(Path, sys.argv[1:4])

def fill(tmp):
    (tmp / "part1").write_text("first")
    started.write_text("")
    while not go.exists():
        time.sleep(0.02)
    (tmp / "part2").write_text("first")

atomic_directory(target, fill)
"""


def test_concurrent_builds_of_one_directory_keep_each_other(tmp_path):
    """A second build of the same target, while a first process is still filling its temporary
    directory, neither removes that directory nor breaks the first build."""
    import os
    import subprocess
    import sys
    import time

    from lm_unlearn.files import atomic_directory

    target, started, go = tmp_path / "out" / "target", tmp_path / "started", tmp_path / "go"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen([sys.executable, "-c", BUILDER, target, started, go], env=env)
    try:
        deadline = time.time() + 60
        while not started.exists():
            assert first.poll() is None and time.time() < deadline, "the first build did not start"
            time.sleep(0.02)
        atomic_directory(target, lambda tmp: (tmp / "second").write_text("second"))
        assert (target / "second").is_file()
        go.write_text("")
        assert first.wait(timeout=60) == 0
    finally:
        go.write_text("")
        first.wait(timeout=60)
    assert sorted(p.name for p in target.iterdir()) == ["part1", "part2"]  # the last whole build
    assert [p.name for p in target.parent.iterdir()] == ["target"]


def test_abandoned_temporary_directories_are_removed(tmp_path):
    import socket
    import subprocess
    import sys

    from lm_unlearn.files import atomic_directory

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(gone.stdout)
    abandoned = tmp_path / f".tmp-target-{socket.gethostname()}-{dead_pid}-abc123"
    abandoned.mkdir()
    other_host = tmp_path / f".tmp-target-elsewhere-{dead_pid}-abc124"
    other_host.mkdir()
    atomic_directory(tmp_path / "target", lambda tmp: None)
    assert not abandoned.exists() and other_host.exists()
