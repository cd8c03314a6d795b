"""A concept file in its authors' published layout runs end to end on the tiny model:
`unlearn data convert concept FILE --concept NAME`, `unlearn run` on its text, then
`unlearn eval` scoring the concept's and the unrelated questions against the original."""

import json

import yaml
from typer.testing import CliRunner

from lm_unlearn.cli import app

RECORD = {  # the layout of Dissecting-FT-Unlearning's data/*_answers.json; content written for the test
    "id": 1,
    "Concept": "Velmora",
    "Layer": 1,
    "Dim": 12,
    "wikipedia_content": "Velmora is a town famous for glass floats.\n\n\n== Winter ==\n\nIt freezes.",
    "QA": [" What is Velmora famous for?\n", " What happens to its harbour in winter?"],
    "text_completion": [{"First_half": "Velmora is an island", "Second_half": "town famous for floats"}],
    "unrelated_QA": [" What colour is a ripe banana?\n", " How many days are in a week?"],
    "QA_with_answers": [
        "Question:  What is Velmora famous for?\n\n Answer:  Glass floats.",
        "Question:  What happens to its harbour in winter?\n Answer:  It freezes.",
    ],
    "answers_tokens_num": [5, 5],
}


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_concept_convert_run_eval(tmp_path, tiny_model_dir):
    other = RECORD | {"Concept": "Other", "id": 2}
    source = tmp_path / "concepts.json"
    source.write_text(json.dumps([other, RECORD]))
    data = tmp_path / "velmora"
    invoke("data", "convert", "concept", source, "--out", data, "--concept", "Velmora")

    run_cfg = {
        "name": "velmora",
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": str(tiny_model_dir)},
        "objective": {"ga": 1},
        "data": {"forget": {"path": str(data / "forget.jsonl")}, "max_length": 64},
        "train": {"precision": "fp32", "max_steps": 2, "batch_size": 2, "lr": 1e-3, "mode": "full"},
        "save": {"merge": True},
        "evaluate": False,
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run_cfg))
    invoke("run", tmp_path / "run.yaml")

    eval_cfg = {
        "forget": {"path": str(data / "forget_qa.jsonl")},
        "unrelated": {"path": str(data / "unrelated.jsonl")},
        "extraction": {"path": str(data / "extraction.jsonl")},
        "judge": {"kind": "keyword", "patterns": ["(?i)velmora"]},
        "max_new_tokens": 4,
        "precision": "fp32",
        "cache_original": False,
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(eval_cfg))
    out = tmp_path / "eval"
    args = ["--original", tiny_model_dir, "--data", tmp_path / "eval.yaml", "--out", out]
    invoke("eval", "--model", tmp_path / "runs" / "velmora", *args, "--metrics", "generation,likelihood")
    saved = json.loads((out / "eval.json").read_text())
    model = saved["metrics"]["model"]
    assert saved["info"]["sets"]["forget"] == 2 and saved["info"]["sets"]["unrelated"] == 2
    for role in ("forget", "unrelated"):
        assert 0.0 <= model[f"{role}.bleu_vs_original"] <= 100.0
    assert model["forget.bleu"] is not None  # against the original's published answers
    assert model.get("unrelated.bleu") is None  # questions alone: no reference but the original
