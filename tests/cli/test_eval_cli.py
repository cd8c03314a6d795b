import json

import typer
import yaml
from typer.testing import CliRunner

from lm_unlearn.cli.evaluate import register

DATA = {
    "forget": {"path": "FORGET", "limit": 5},
    "heldout": {"path": "HELDOUT", "limit": 5},
    "retain": {"path": "RETAIN", "limit": 4},
    "judge": {"kind": "keyword", "patterns": ["(?i)potter"]},
    "max_new_tokens": 4,
    "precision": "fp32",
}


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def write_data(tmp_path, cfg) -> str:
    paths = {
        k: str(v.path) for k, v in (("forget", cfg.forget), ("heldout", cfg.heldout), ("retain", cfg.retain))
    }
    data = {k: (dict(v, path=paths[k]) if k in paths else v) for k, v in DATA.items()}
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_eval_then_compare(tmp_path, tiny_model_dir, other_tiny_dirs, cfg):
    data = write_data(tmp_path, cfg)
    runner = CliRunner()
    app = make_app()
    outs = []
    for i, model in enumerate([tiny_model_dir, other_tiny_dirs[1]]):
        out = tmp_path / f"run{i}"
        args = ["eval", "--model", str(model), "--original", str(other_tiny_dirs[0]), "--data", data]
        result = runner.invoke(app, args + ["--out", str(out), "--metrics", "generation,likelihood,utility"])
        assert result.exit_code == 0, result.output
        saved = json.loads((out / "eval.json").read_text())
        assert saved["info"]["sets"]["forget"] == 5
        assert "forget.judge_rate" in saved["metrics"]["model"]
        assert "mia.loss.auc" not in saved["metrics"]["model"]  # group not selected
        assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
        outs.append(str(out))
    comparison = tmp_path / "cmp.html"
    result = runner.invoke(app, ["compare", *outs, "--out", str(comparison)])
    assert result.exit_code == 0, result.output
    assert "forget.rougeL" in result.output and "run0" in result.output and "run1" in result.output
    html = comparison.read_text()
    assert '<section id="tradeoff">' in html and "data:image/png;base64," in html


def test_compare_names_a_directory_without_eval_json(tmp_path):
    result = CliRunner().invoke(make_app(), ["compare", str(tmp_path)])
    assert result.exit_code == 2
    assert "no eval.json" in result.output


def test_eval_reports_bad_data_config(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("forget: {path: x.jsonl}\nmax_new_tokens: -1\n")
    result = CliRunner().invoke(make_app(), ["eval", "--model", str(tiny_model_dir), "--data", str(bad)])
    assert result.exit_code == 2
    assert "max_new_tokens" in result.output


def test_eval_reference_model_option(tmp_path, tiny_model_dir, other_tiny_dirs, cfg):
    data = write_data(tmp_path, cfg)
    out = tmp_path / "out"
    args = ["eval", "--model", str(tiny_model_dir), "--data", data, "--metrics", "mia", "--out", str(out)]
    result = CliRunner().invoke(make_app(), args + ["--reference-model", str(other_tiny_dirs[0])])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "eval.json").read_text())
    assert "mia.ref.auc" in written["metrics"]["model"]
    assert written["info"]["definitions"]["mia"]["reference_model"].startswith("reference_model (")
