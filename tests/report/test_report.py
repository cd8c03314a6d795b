import copy
import json
from html import escape

from lm_unlearn.evaluation.catalog import GROUP_TITLES
from lm_unlearn.report import redact_result, render_report, write_outputs
from lm_unlearn.report.html import FORGET_SIDE


def test_report_renders_every_metric_section(full_result):
    html = render_report(full_result)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for group in GROUP_TITLES:
        assert f'<section id="{group}">' in html, group
    for section in ("setup", "cost", "examples", "definitions"):
        assert f'<section id="{section}">' in html
    # Verdict first, then the before/after answers, then the folded detail groups.
    assert html.index('id="verdict"') < html.index('id="answers"') < html.index('id="setup"')
    assert '<section id="forget"><details>' in html
    assert html.count("data:image/png;base64,") >= len(GROUP_TITLES)  # one chart per group
    assert "<script" not in html and "http://" not in html  # self-contained, nothing fetched
    assert escape(full_result["examples"]["retain"][0]["prompt"], quote=False) in html


def test_report_escapes_model_output(full_result):
    result = copy.deepcopy(full_result)
    result["examples"]["retain"][0]["generation"] = "<script>alert('x')</script>"
    html = render_report(result)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def forget_side_texts(result):
    texts = set()
    for role in FORGET_SIDE:
        for row in result["examples"].get(role, []):
            texts |= {row[k] for k in ("prompt", "reference") if len(row.get(k, "")) > 8}
    return texts


def test_redaction_removes_all_forget_text(full_result, tmp_path):
    texts = forget_side_texts(full_result)
    assert len(texts) >= 12
    plain = render_report(full_result)
    assert any(escape(t, quote=False) in plain for t in texts)  # the test can see them when present
    html = render_report(full_result, redact=True)
    for text in texts:
        assert text not in html and escape(text, quote=False) not in html and escape(text) not in html
    assert "[redacted: " in html
    # Retain-side text stays readable.
    assert escape(full_result["examples"]["retain"][0]["prompt"], quote=False) in html

    json_path, html_path = write_outputs(full_result, tmp_path, "t", redact=True)
    saved = json_path.read_text()
    for text in texts:
        assert json.dumps(text)[1:-1] not in saved
    assert json.loads(saved)["info"]["redacted"] is True
    assert "[redacted: " in html_path.read_text()


def test_redact_result_keeps_length_and_does_not_modify_input(full_result):
    before = json.dumps(full_result, sort_keys=True, default=str)
    redacted = redact_result(full_result)
    assert json.dumps(full_result, sort_keys=True, default=str) == before
    row, orig = redacted["examples"]["forget"][0], full_result["examples"]["forget"][0]
    assert row["prompt"] == f"[redacted: {len(orig['prompt'])} chars]"
    assert row["nll"] == orig["nll"]  # numbers stay
