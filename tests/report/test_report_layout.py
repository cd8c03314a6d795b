"""The verdict-first report on hand-made eval.json / metrics.jsonl / manifest.json: order, valid
and escaped HTML, redaction in the new sections, `unlearn report`, and the comparison page."""

import json
from html.parser import HTMLParser

import typer
from support.reports import HOSTILE, MARKER, eval_result, write_run
from typer.testing import CliRunner

from lm_unlearn.cli.evaluate import register, verdict_lines
from lm_unlearn.report import (
    redact_result,
    refresh_report,
    render_comparison,
    render_report,
    write_outputs,
)
from lm_unlearn.report.headline import word_diff
from lm_unlearn.report.html import read_run

VOID = {"meta", "img", "br", "hr", "input", "link"}


class Checker(HTMLParser):
    """Tags balanced and nested, ids unique, images inline PNGs, no scripts or event handlers."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.errors, self.images, self.order = [], set(), [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" or any(name.startswith("on") for name in attrs):
            self.errors.append(f"active content: <{tag} {attrs}>")
        if "id" in attrs:
            if attrs["id"] in self.ids:
                self.errors.append(f"duplicate id {attrs['id']}")
            self.ids.add(attrs["id"])
            self.order.append(attrs["id"])
        if tag == "img":
            self.images += 1
            if not attrs.get("src", "").startswith("data:image/png;base64,"):
                self.errors.append(f"image not inline: {attrs.get('src', '')[:40]}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def check(html: str) -> Checker:
    checker = Checker()
    checker.feed(html)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert not checker.stack, checker.stack
    return checker


def test_the_verdict_comes_first_and_details_are_folded(tmp_path):
    run = write_run(tmp_path / "run")
    html = render_report(eval_result(), "t", run=read_run(run))
    checker = check(html)
    first = ["verdict", "answers", "figures", "curves", "tradeoff"]
    assert checker.order[: len(first)] == first
    assert checker.order.index("tradeoff") < checker.order.index("setup") < checker.order.index("forget")
    assert "✗ Forgotten, but the model was damaged (model kept failed)." in html
    assert "100 % → 4 % (target ≤ 10 %)" in html and "want ≥ 70 %" in html
    for group in ("forget", "retain", "mia", "setup", "examples", "definitions"):
        assert f'<section id="{group}"><details><summary>' in html, group
    assert "<details open" not in html
    assert checker.images == 2 + 7  # curves, trade-off, one chart per group with plotted metrics
    assert "kept step 8: first step that met the forget target" in html
    assert "stopped at step 12: max_steps &lt;b&gt;" in html


def test_hostile_strings_are_escaped_everywhere(tmp_path):
    result = eval_result()
    result["info"]["models"]["model"] = HOSTILE[1]
    html = render_report(result, HOSTILE[0], run=read_run(write_run(tmp_path / "run", result)))
    check(html)
    for text in HOSTILE[:2]:
        assert text not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&quot;&gt;&lt;img src=x" in html
    page = render_comparison({HOSTILE[0]: result, "a$b$ c": eval_result(**{"forget.judge_rate": 0.5})})
    check(page)
    assert HOSTILE[0] not in page


def test_redaction_holds_in_the_new_sections(tmp_path):
    run = write_run(tmp_path / "run")
    plain = render_report(eval_result(), run=read_run(run))
    assert MARKER in plain  # the test sees the marker when nothing is redacted
    html = render_report(eval_result(), redact=True, run=read_run(run))
    check(html)
    assert MARKER not in html and "[redacted: " in html
    assert "retain question 0" in html and "Forget prompts (4 of 4)" in html  # normal text stays
    assert refresh_report(run, redact=True)
    assert MARKER not in (run / "report.html").read_text()
    json_path, html_path = write_outputs(eval_result(), tmp_path / "out", "t", redact=True)
    assert MARKER not in json_path.read_text() and MARKER not in html_path.read_text()
    assert refresh_report(tmp_path / "out")  # re-rendering a redacted eval.json stays redacted
    assert MARKER not in html_path.read_text()


def test_word_diff_marks_changed_words_and_escapes():
    before, after = word_diff("Harry <b> went to Hogwarts", "Someone <b> went home")
    assert before == "<del>Harry</del> &lt;b&gt; went <del>to Hogwarts</del>"
    assert after == "<ins>Someone</ins> &lt;b&gt; went <ins>home</ins>"
    before, after = word_diff("[redacted: 12 chars]", "[redacted: 3 chars]")
    assert "<del>" not in before and "class='redacted'" in after


def test_a_report_without_run_files_or_judge_still_renders():
    result = eval_result()
    del result["metrics"]["model"]["forget.judge_rate"]
    html = render_report(result)
    checker = check(html)
    assert "curves" not in checker.order and "verdict" in checker.order
    assert "? Cannot say whether it was forgotten" in html
    assert "<b>Forgotten</b>: not judged, as no judge was configured (set `judge:` in" in html


def test_torn_metrics_line_is_skipped(tmp_path):
    history, manifest = read_run(write_run(tmp_path / "run"))
    assert [r["step"] for r in history] == list(range(1, 13)) and manifest.selection["step"] == 8


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_unlearn_report_rerenders_without_evaluating(tmp_path, monkeypatch):
    import lm_unlearn.evaluation as evaluation

    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    run = write_run(tmp_path / "run")
    before = (run / "eval.json").read_text()
    result = CliRunner().invoke(make_app(), ["report", str(run)])
    assert result.exit_code == 0, result.output
    html = (run / "report.html").read_text()
    assert html.index('id="verdict"') < html.index('id="forget"')
    assert '<span class="mark">✗</span> <b>Model kept</b>' in html
    assert (run / "eval.json").read_text() == before  # nothing re-evaluated or rewritten

    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("verdict: {retain_rougeL_min: 0.2}\n")
    result = CliRunner().invoke(make_app(), ["report", str(run), "--data", str(lenient), "--redact"])
    assert result.exit_code == 0, result.output
    html = (run / "report.html").read_text()
    assert "✓ Worked" in html and MARKER not in html

    result = CliRunner().invoke(make_app(), ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no eval.json" in result.output


def test_compare_puts_the_best_tradeoff_first(tmp_path):
    results = {
        "wrecked": eval_result(),
        "remembers": eval_result(**{"forget.judge_rate": 0.6, "retain.rougeL_vs_original": 0.9}),
        "good": eval_result(**{"retain.rougeL_vs_original": 0.9}),
    }
    html = render_comparison(results)
    checker = check(html)
    assert checker.order[:3] == ["verdict", "answers", "tradeoff"] and '<section id="table"><details>' in html
    body = html[html.index('id="verdict"') :]
    assert body.index("good") < body.index("wrecked")
    assert "✓ Worked" in html and checker.images == 1
    text = verdict_lines(results)
    assert text.splitlines()[0] == "1. good: ✓ Worked: the forget target is met and the model is kept."
    paths = []
    for label, result in results.items():
        (tmp_path / label).mkdir()
        (tmp_path / label / "eval.json").write_text(json.dumps(result))
        paths.append(str(tmp_path / label))
    out = CliRunner().invoke(make_app(), ["compare", *paths, "--out", str(tmp_path / "c.html")])
    assert out.exit_code == 0, out.output
    assert out.output.index("1. good") < out.output.index("forget.judge_rate ")


def test_compare_shows_each_runs_answers_and_redacts(tmp_path):
    results = {"a": eval_result(), "b": eval_result(**{"retain.rougeL_vs_original": 0.9})}
    results["b"]["examples"]["retain"][0]["generation"] = "b-only-answer"
    html = render_comparison(results)
    check(html)
    answers = html[html.index('id="answers"') : html.index('id="tradeoff"')]
    # the best run first under each prompt, the original's answer above both
    assert answers.index("before") < answers.index(">b<") < answers.index(">a<")
    assert "<ins>b-only-answer</ins>" in answers and "retain question 0" in answers
    assert MARKER in answers  # forget-side text shows when nothing is redacted
    redacted = render_comparison(results, redact=True)
    check(redacted)
    assert MARKER not in redacted and "[redacted: " in redacted and "retain question 0" in redacted
    results["a"] = redact_result(results["a"])  # one redacted eval.json redacts the whole page
    assert MARKER not in render_comparison(results)
    paths = []
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "eval.json").write_text(json.dumps(eval_result()))
        paths.append(str(tmp_path / label))
    out = tmp_path / "c.html"
    done = CliRunner().invoke(make_app(), ["compare", *paths, "--out", str(out), "--redact"])
    assert done.exit_code == 0, done.output
    assert MARKER not in out.read_text() and "[redacted: " in out.read_text()
