import json

import pytest
from typer.testing import CliRunner

from lm_unlearn.analysis.audit import read_run
from lm_unlearn.cli import app
from lm_unlearn.config import validate_config
from lm_unlearn.data.demo import demo_dataset
from lm_unlearn.engine import train
from lm_unlearn.errors import UnlearnError

runner = CliRunner()


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tmp_path_factory):
    """A real two-step `yao` run of the tiny model on four demo forget records."""
    forget = demo_dataset("forget").path
    cfg = validate_config(
        {
            "method": "yao",
            "model": {"name": str(tiny_model_dir)},
            "data": {"forget": {"path": forget, "limit": 4}, "retain": {"path": demo_dataset("retain").path}},
            "train": {"max_steps": 2, "lr": 5e-2, "precision": "fp32"},
        }
    )
    run_dir = tmp_path_factory.mktemp("runs") / "tiny-yao"
    train(cfg, run_dir)
    return run_dir


def test_audit_writes_json_and_self_contained_html(finished_run):
    (finished_run / "report.html").write_text("lead's report")
    args = ["audit", str(finished_run), "--window", "1", "--max-new-tokens", "4", "--relearn-steps", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    audit = json.loads((finished_run / "audit.json").read_text())
    assert set(audit["attacks"]) == {"relearn", "quantize", "paraphrase", "jailbreak", "logit_lens"}
    assert audit["complete"] is True
    assert len(audit["verdicts"]) == 5 and all(v in result.output for v in audit["verdicts"])
    krs = audit["recovery"]["krs"]
    assert audit["recovery"]["windows"] == [[0, 0], [1, 1]]
    assert set(krs) == {"mlp_coef", "attn_out", "mlp_coef+attn_out", "mlp_value"}
    page = (finished_run / "audit.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and 'src="http' not in page
    assert "Who is the author of the Harry Potter books?" in page
    assert "Harry Potter&#x27;s" in page  # the forget text is escaped, not raw
    assert (finished_run / "report.html").read_text() == "lead's report"


def test_audit_section_is_added_to_the_run_report(finished_run):
    from lm_unlearn.report import write_outputs

    (finished_run / "audit.json").unlink(missing_ok=True)  # from the test above
    write_outputs({"metrics": {"model": {"forget.nll": 2.5}}, "info": {}}, finished_run, "tiny run")
    assert 'id="audit"' not in (finished_run / "report.html").read_text()
    args = ["audit", str(finished_run), "--attacks", "logit_lens", "--window", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    page = (finished_run / "report.html").read_text()
    audit = json.loads((finished_run / "audit.json").read_text())
    assert 'id="audit"' in page and 'href="audit.html"' in page
    assert audit["verdicts"][0].split(":")[0] in page
    assert page.count("data:image/png;base64,") >= 1 and "best KRS" in page
    assert "forget.nll" in page  # the evaluation is still there
    # A later re-evaluation keeps the audit section.
    write_outputs({"metrics": {"model": {"forget.nll": 2.6}}, "info": {}}, finished_run, "tiny run")
    assert 'id="audit"' in (finished_run / "report.html").read_text()
    for name in ("report.html", "eval.json", "audit.json", "audit.html"):
        (finished_run / name).unlink()


def test_audit_redact_leaves_forget_text_out(finished_run):
    args = ["audit", str(finished_run), "--attacks", "paraphrase", "--no-recovery", "--max-new-tokens", "3"]
    result = runner.invoke(app, [*args, "--redact"])
    assert result.exit_code == 0, result.output
    for name in ("audit.json", "audit.html"):
        text = (finished_run / name).read_text()
        assert "Harry Potter" not in text and "Hogwarts" not in text


def test_attack_command_and_recovery_command(finished_run, tiny_model_dir, tmp_path):
    model = str(finished_run / "model")
    result = runner.invoke(
        app,
        [
            "attack",
            "quantize",
            "--model",
            model,
            "--original",
            str(tiny_model_dir),
            "--limit",
            "3",
            "--max-new-tokens",
            "3",
            "--bits",
            "8,4",
            "--group-size",
            "32",
            "--out",
            str(tmp_path / "q.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("quantize (8-bit)")
    assert set(json.loads((tmp_path / "q.json").read_text())["variants"]) == {"8bit", "4bit"}
    out = tmp_path / "rec.json"
    result = runner.invoke(
        app,
        [
            "analyze",
            "recovery",
            "--original",
            str(tiny_model_dir),
            "--unlearned",
            model,
            "--window",
            "2",
            "--limit",
            "3",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["windows"] == [[0, 1], [1, 1]]  # centred on each layer, truncated at the edges
    assert (data["answers"], data["aggregate"]) == ("original_greedy", "per_question")
    # The first window covers every layer: patching both activations gives back the original logits
    # except for what LoRA changed in the MLP output projections themselves.
    assert all(-10 < v <= 1.0 for v in data["krs"]["mlp_coef+attn_out"])
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_attack_and_unfinished_run_are_clear_errors(finished_run, tmp_path):
    result = runner.invoke(app, ["attack", "telepathy", "--model", str(finished_run / "model")])
    assert result.exit_code == 2 and "unknown attack 'telepathy'" in result.output
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(UnlearnError, match="not 'finished'"):
        read_run(tmp_path)
