"""The run directory's owner: paths, manifest versions, atomic manifest writes, history reading."""

import json

import pytest

from lm_unlearn import rundir
from lm_unlearn.errors import UnlearnError
from lm_unlearn.rundir import (
    Manifest,
    RunDir,
    is_run_dir,
    manifest_version,
    read_history,
    read_manifest,
    write_manifest,
)


def test_paths_have_the_names_every_reader_expects(tmp_path):
    paths = RunDir(tmp_path)
    assert paths.manifest == tmp_path / "manifest.json" and paths.config == tmp_path / "config.yaml"
    assert paths.metrics == tmp_path / "metrics.jsonl" and paths.validation == tmp_path / "validation.json"
    assert paths.eval == tmp_path / "eval.json" and paths.report == tmp_path / "report.html"
    assert paths.model == tmp_path / "model" and paths.adapter == tmp_path / "adapter"
    assert paths.checkpoints == tmp_path / "checkpoints" and paths.prompt_wrapper == tmp_path / "icu.json"
    assert RunDir(str(tmp_path)).root == tmp_path


def test_a_written_manifest_carries_the_schema_version_and_an_old_one_reads_as_version_0(tmp_path):
    manifest = Manifest(status="running")
    path = write_manifest(tmp_path, manifest)
    assert path == tmp_path / "manifest.json" and manifest.schema_version == rundir.SCHEMA_VERSION
    on_disk = json.loads(path.read_text())
    assert on_disk == {"status": "running", "schema_version": rundir.SCHEMA_VERSION}
    assert read_manifest(tmp_path).to_json() == on_disk
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".tmp-*"))  # written atomically
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "finished"}))
    assert manifest_version(read_manifest(tmp_path)) == 0


def test_a_manifest_keeps_its_keys_and_values_through_a_read_and_a_write(tmp_path):
    # A training run writes no `kind`; a procedure's manifest says which it is. Keys the model
    # does not name (an older layout's) survive a rewrite.
    written = {"tool": "lm-unlearn", "status": "finished", "mask": None, "final": None, "steps": 3}
    written |= {"selection": {"step": 2, "signals": {"val_forget_nll": 1.5}}, "wall_s": 9.5}
    (tmp_path / "manifest.json").write_text(json.dumps(written))
    manifest = read_manifest(tmp_path)
    assert manifest.kind == "train" and manifest.steps == 3 and manifest.model_extra == {"wall_s": 9.5}
    manifest.update({"status": "failed", "error": "disk full"})
    write_manifest(tmp_path, manifest)
    again = json.loads((tmp_path / "manifest.json").read_text())
    assert again == written | {"status": "failed", "error": "disk full", "schema_version": 1}
    write_manifest(tmp_path, Manifest(kind="icu", status="finished"))
    assert read_manifest(tmp_path).kind == "icu"


def test_a_manifest_with_a_wrongly_typed_field_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "finished", "steps": "many"}))
    with pytest.raises(UnlearnError, match="manifest.json: steps: .*damaged"):
        read_manifest(tmp_path)


def test_a_missing_or_damaged_manifest_is_named(tmp_path):
    with pytest.raises(UnlearnError, match="manifest.json is missing"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UnlearnError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_is_run_dir_needs_the_manifest_and_the_config(tmp_path):
    write_manifest(tmp_path, Manifest())
    assert not is_run_dir(tmp_path)
    (tmp_path / "config.yaml").write_text("{}")
    assert is_run_dir(tmp_path)


def test_history_skips_a_line_cut_short_and_stops_at_a_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [r["step"] for r in read_history(path)] == [1, 2]
    assert [r["step"] for r in read_history(path, up_to_step=1)] == [1]
    assert read_history(tmp_path / "absent.jsonl") == []
