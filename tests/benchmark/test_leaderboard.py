"""Leaderboard aggregation, ordering and files from hand-made eval.json results."""

import csv
import json

import pytest

from lm_unlearn.benchmark.leaderboard import aggregate, row_from_eval, write_leaderboard


def eval_json(path, fq, nll, train_s=None):
    result = {
        "metrics": {"model": {"forget_quality.ks_pvalue": fq, "forget.nll": nll, "retain.rougeL": nll / 10}},
        "info": {"eval_cost": {"wall_s": 2.0}},
        "run_cost": {"train_wall_s": train_s, "train_peak_rss_bytes": 3 * 2**29}
        if train_s is not None
        else {},
    }
    path.mkdir(parents=True)
    (path / "eval.json").write_text(json.dumps(result))
    return path / "eval.json"


@pytest.fixture
def rows(tmp_path):
    spec = [
        ("ga", "method", 0, 0.2, 3.0, 5.0),
        ("ga", "method", 1, 0.4, 5.0, 7.0),
        ("npo", "method", 0, 0.5, 4.0, 6.0),
        ("target", "reference", 0, 0.01, 1.0, None),
        ("retrain", "reference", 0, 1.0, 4.5, None),
    ]
    return [
        row_from_eval("knowledge", m, kind, s, eval_json(tmp_path / f"{m}{s}", fq, nll, t))
        for m, kind, s, fq, nll, t in spec
    ]


def test_aggregate_means_over_seeds_and_orders_references_first(rows):
    table = aggregate(rows)
    assert [r["method"] for r in table] == ["retrain", "target", "npo", "ga"]  # then by forget quality
    ga = table[-1]
    assert ga["seeds"] == 2
    assert ga["forget_quality.ks_pvalue"] == pytest.approx(0.3)
    assert ga["forget_quality.ks_pvalue.std"] == pytest.approx(((0.1**2 + 0.1**2) / 1) ** 0.5)
    assert ga["forget.nll"] == pytest.approx(4.0) and ga["cost.train_wall_s"] == pytest.approx(6.0)
    assert ga["cost.train_peak_gib"] == pytest.approx(1.5)
    assert table[0]["cost.train_wall_s"] is None and table[0]["forget_quality.ks_pvalue.std"] is None


def test_files_hold_every_seed_row_and_the_markdown_table(rows, tmp_path):
    paths = write_leaderboard(rows, tmp_path / "out", "test board")
    written = list(csv.DictReader(paths["csv"].open()))
    assert len(written) == 5 and written[1]["seed"] == "1" and written[1]["forget.nll"] == "5.0"
    assert written[3]["cost.train_wall_s"] == ""  # missing, not zero
    md = paths["markdown"].read_text()
    assert "| knowledge | ga | 2 | 0.3 ± 0.14 |" in md
    assert "| knowledge | *retrain* (reference) | 1 | 1 |" in md
    assert paths["plot:knowledge"].read_bytes()[:4] == b"\x89PNG"  # forget quality vs retain ROUGE-L


def test_markdown_puts_the_verdicts_best_tradeoff_first(tmp_path):
    def run(name, judge, kept, kind="method"):
        path = tmp_path / name
        path.mkdir()
        model = {
            "forget.judge_rate": judge,
            "retain.rougeL_vs_original": kept,
            "unrelated.bleu_vs_original": 0.6,
        }
        info = {"config": {"verdict": {"retain_rougeL_min": 0.5}}}
        (path / "eval.json").write_text(json.dumps({"metrics": {"model": model}, "info": info}))
        return row_from_eval("knowledge", name, kind, 0, path / "eval.json")

    rows = [run("wrecks", 0.0, 0.1), run("target", 1.0, 1.0, "reference"), run("good", 0.05, 0.6)]
    md = write_leaderboard(rows, tmp_path / "out", "board")["markdown"].read_text()
    verdicts = md[md.index("## Verdict, best trade-off first") : md.index("## Details")]
    assert verdicts.index("| 1 | good | ✓ Worked") < verdicts.index("| 2 | wrecks | ✗ Forgotten, but")
    assert "| - | *target* (reference) | ✗ Not forgotten enough" in verdicts
    assert "✓ 60 %" in verdicts  # the recorded threshold 0.5, not the default 0.7, judged it
    assert md.index("## Details") < md.index("| knowledge | good |")
