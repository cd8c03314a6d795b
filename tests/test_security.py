"""Hostile and broken inputs (issue 15): config files, run directories and model directories are
not trusted; only the user's command-line flags are."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from support.tiny import tiny_run_config
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
    (message,) = [line for line in result.output.splitlines() if line.startswith("  name:")]
    assert message.count("got") == 1 and message.endswith("')"), message  # the name once, on this line
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
    it as a scenario's judge does) appears in no file the run, evaluations, `unlearn report` or
    the cache write."""
    from support.tiny import write_jsonl

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
    for evaluated in (run_dir, tmp_path / "ev"):  # re-rendered from the redacted eval.json
        result = invoke("report", evaluated)
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


@pytest.mark.parametrize("config, role", [("run.yaml", "retain"), ("eval.yaml", "forget")])
@pytest.mark.parametrize("name", ["../outside.jsonl", "ABSOLUTE"])
def test_scenario_configs_name_only_files_inside_the_scenario_directory(tmp_path, config, role, name):
    """run.yaml and eval.yaml are scenario data too: the benchmark trains on (retain) and
    evaluates what they name, so a path must name one of the scenario's own files."""
    from lm_unlearn.benchmark.prepare import Prepared
    from lm_unlearn.errors import DataError
    from lm_unlearn.scenarios import make

    data = make("knowledge", tmp_path / "k" / "data", seed=0, people=10)
    outside = tmp_path / "k" / "outside.jsonl"
    outside.write_text('{"prompt": "secret?", "response": "taught from outside"}\n')
    settings = yaml.safe_load((data / config).read_text())
    (settings["data"] if config == "run.yaml" else settings)[role]["path"] = (
        str(outside) if name == "ABSOLUTE" else name
    )
    (data / config).write_text(yaml.safe_dump(settings))
    prepared = Prepared(tmp_path / "k")
    read = prepared.run_data if config == "run.yaml" else prepared.eval_data
    with pytest.raises(DataError, match=f"{config}: .*outside.jsonl is not a file inside"):
        read()


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


def one_line_error(result, *parts):
    assert result.exit_code == 2, result.output
    # progress bars may precede it; the error itself is one line
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert result.output.rstrip().endswith(lines[0]), result.output
    for part in parts:
        assert part in lines[0], lines[0]


def test_unwritable_output_dir_fails_before_the_model_loads(tmp_path, tiny_model_dir):
    path = write_config(tmp_path, tiny_model_dir)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # the model does not exist either: the output directory is checked first
    result = invoke("run", path, "--set", f"output_dir={blocker / 'runs'}", "--set", "model.name=/no/model")
    one_line_error(result, str(blocker / "runs"), "cannot write there")


def test_resume_refuses_a_finished_run_and_a_missing_manifest(tmp_path, tiny_model_dir):
    path = write_config(tmp_path, tiny_model_dir)
    assert invoke("run", path, "--set", "train.max_steps=1").exit_code == 0
    run_dir = tmp_path / "runs" / "tiny"
    metrics = (run_dir / "metrics.jsonl").read_text()
    one_line_error(invoke("run", "--resume", run_dir), "already finished")
    assert (run_dir / "metrics.jsonl").read_text() == metrics
    (run_dir / "manifest.json").unlink()
    one_line_error(invoke("run", "--resume", run_dir), "manifest.json is missing")


@pytest.mark.parametrize("weight", ["[1]", "abc", "{x: 1}"])
def test_a_term_weight_that_is_not_a_number(tmp_path, tiny_model_dir, weight):
    path = write_config(tmp_path, tiny_model_dir)
    result = invoke("run", path, "--set", f"objective={{ga: {{weight: {weight}}}}}")
    one_line_error(result, "objective.ga.weight", "a number")


def test_a_failed_final_save_is_recorded_and_explained(tmp_path, tiny_model_dir, monkeypatch):
    import errno

    from lm_unlearn import engine

    def full_disk(cfg, run_dir, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "model"))

    monkeypatch.setattr(engine, "save_outputs", full_disk)
    path = write_config(tmp_path, tiny_model_dir)
    result = invoke("run", path, "--set", "train.max_steps=1")
    one_line_error(result, "No space left on device", "--resume")
    manifest = json.loads((tmp_path / "runs" / "tiny" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left" in manifest["error"]


def test_checkpoint_must_match_the_trainable_parameters_exactly(tmp_path):
    import torch

    from lm_unlearn.checkpoint import check_weights
    from lm_unlearn.errors import UnlearnError

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    good = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    check_weights(tmp_path, good, model)
    frozen = good | {"0.weight": torch.zeros(3, 4)}
    broadcast = good | {"1.bias": torch.zeros(1)}
    missing = {k: v for k, v in good.items() if k != "1.bias"}
    for weights, message in (
        (frozen, "not trainable parameters of this model: 0.weight"),
        (broadcast, "other shapes than the model's: 1.bias"),
        (missing, "missing trainable parameters: 1.bias"),
    ):
        with pytest.raises(UnlearnError, match=message):
            check_weights(tmp_path, weights, model)


def test_data_make_keeps_the_users_other_files(tmp_path):
    out = tmp_path / "privacy"
    assert invoke("data", "make", "privacy", "--out", out).exit_code == 0
    (out / "my-notes.txt").write_text("mine")
    result = invoke("data", "make", "privacy", "--out", out, "--seed", "1")
    one_line_error(result, "my-notes.txt", "does not list")
    assert (out / "my-notes.txt").read_text() == "mine"


def test_dollar_signs_in_run_names_do_not_break_compare(tmp_path):
    metrics = {"forget.rougeL": 0.2, "retain.ppl": 12.0}
    dirs = []
    for name, shift in (("cost$1", 0.0), ("run$^$x", 0.1), ("a$_{$", 0.2)):
        run = tmp_path / name
        run.mkdir()
        result = {"metrics": {"model": {k: v + shift for k, v in metrics.items()}}, "info": {}}
        (run / "eval.json").write_text(json.dumps(result))
        dirs.append(run)
    result = invoke("compare", *dirs, "--out", tmp_path / "cmp.html")
    assert result.exit_code == 0, result.output
    assert "cost$1" in (tmp_path / "cmp.html").read_text()


@pytest.mark.parametrize(
    "module",
    [
        "methods/icu.py",
        "methods/__init__.py",
        "benchmark/grid.py",
        "benchmark/leaderboard.py",
        "cli/analysis.py",
    ],
)
def test_outputs_are_written_atomically(module):
    """These modules write results a reader may see half-written: only through files.atomic_*."""
    import re

    import lm_unlearn

    source = (Path(lm_unlearn.__file__).parent / module).read_text()
    assert not re.search(r"\.write_(text|bytes)\(|open\([^)]*['\"][wa]b?['\"]", source)


def test_converted_gguf_is_checked_against_its_record_on_every_load(tmp_path, tiny_model_dir, monkeypatch):
    from support.tiny import save_tiny

    from lm_unlearn import models

    monkeypatch.setenv("LM_UNLEARN_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "package" / "Model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF stand-in, version 1")
    conversions = []

    def fake_convert(source, target, digest=None):  # the real one dequantizes a real GGUF
        conversions.append(source)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(tiny_model_dir, target)
        models.write_provenance(target, source.name, models.sha256_file(source))
        return target

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    monkeypatch.setattr(models, "builtin_gguf", lambda name: gguf)
    path, hashes = models.resolve_model_path("builtin:smollm2-135m-instruct")
    assert hashes == {"Model.gguf": models.sha256_file(gguf)} and len(conversions) == 1
    models.resolve_model_path("builtin:smollm2-135m-instruct")
    assert len(conversions) == 1  # the record matches: reused

    # another (random) model put in the cache is not taken for the GGUF's conversion
    shutil.rmtree(path)
    save_tiny(Path(path), seed=1)
    models.resolve_model_path("builtin:smollm2-135m-instruct")
    assert len(conversions) == 2
    # a changed weight file, and a changed package GGUF, are noticed too
    weights = Path(path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    models.resolve_model_path("builtin:smollm2-135m-instruct")
    gguf.write_bytes(b"GGUF stand-in, version 2")
    _, hashes = models.resolve_model_path("builtin:smollm2-135m-instruct")
    assert len(conversions) == 4 and hashes["Model.gguf"] == models.sha256_file(gguf)


def test_pickled_weights_are_not_loaded(tmp_path, tiny_model_dir):
    import torch

    from lm_unlearn.errors import ModelError
    from lm_unlearn.models import load_model

    model = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, model)
    from safetensors.torch import load_file

    torch.save(load_file(str(model / "model.safetensors")), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="could not load model"):
        load_model(str(model))


@pytest.fixture
def finished_run(tmp_path, tiny_model_dir):
    from lm_unlearn.engine import train

    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.max_steps": 1})
    run_dir = tmp_path / "runs" / "tiny"
    train(cfg, run_dir)
    return run_dir


def test_eval_and_audit_refuse_weights_changed_after_the_run(finished_run):
    config = finished_run / "model" / "config.json"
    config.write_text(config.read_text().replace("{", '{"changed": 1,', 1))
    result = invoke("eval", "--model", finished_run, "--metrics", "likelihood")
    one_line_error(result, "does not match the hashes", "manifest.json")
    result = invoke("audit", finished_run, "--attacks", "logit_lens", "--no-recovery")
    one_line_error(result, "does not match the hashes")


def test_eval_loads_the_original_at_the_runs_revision(finished_run, monkeypatch):
    from lm_unlearn import models
    from lm_unlearn.errors import UnlearnError

    manifest = json.loads((finished_run / "manifest.json").read_text())
    manifest["config"]["model"]["revision"] = "0123abc"
    (finished_run / "manifest.json").write_text(json.dumps(manifest))
    seen = []
    real = models.load_model

    def recording(spec, **kwargs):
        seen.append((spec, kwargs.get("revision")))
        if kwargs.get("revision"):
            raise UnlearnError("stop here")
        return real(spec, **kwargs)

    monkeypatch.setattr(models, "load_model", recording)
    result = invoke("eval", "--model", finished_run, "--metrics", "likelihood")
    assert "stop here" in result.output
    assert (manifest["source_model"]["spec"], "0123abc") in seen


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.batch_size", 10**12),
        ("train.lora.r", 10**11),
        ("data.max_length", 10**21),
        ("train.max_steps", 10**12),
    ],
)
def test_absurd_sizes_are_refused(tmp_path, tiny_model_dir, key, value):
    path = write_config(tmp_path, tiny_model_dir)
    result = invoke("run", path, "--set", f"{key}={value}")
    assert result.exit_code == 2 and f"{key}={value} is beyond any real run" in result.output


def test_a_yaml_bomb_gives_a_short_message(tmp_path):
    lines = ['a: &a ["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]']
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    lines.append("train: {batch_size: *h, lr: *h, seed: *h}")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert len(path.read_bytes()) < 400
    result = invoke("run", path)
    assert result.exit_code == 2 and "invalid configuration" in result.output
    assert len(result.output) < 2000


def test_a_deep_yaml_bomb_is_never_expanded():
    """Cutting the message is not enough: the full repr of these values (7**11 copies of a
    short list, tens of gigabytes from 400 bytes of YAML) must never be built."""
    from lm_unlearn.config import validate_config
    from lm_unlearn.errors import ConfigError

    names = "abcdefghijkl"
    lines = ['a: &a ["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]']
    lines += [f"{name}: &{name} [{', '.join([f'*{prev}'] * 7)}]" for prev, name in zip(names, names[1:])]
    text = "\n".join(lines) + "\ntrain: {batch_size: *l, lr: *l, seed: *l}\n"
    assert len(text) < 500
    with pytest.raises(ConfigError, match="invalid configuration") as info:
        validate_config(yaml.safe_load(text), "bomb.yaml")
    assert "train.batch_size" in str(info.value) and len(str(info.value)) < 2000
