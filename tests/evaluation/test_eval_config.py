import pytest

from lm_unlearn.errors import ConfigError
from lm_unlearn.evaluation import load_eval_config, load_eval_data


def test_demo_defaults_fill_every_role():
    cfg = load_eval_config()
    data = load_eval_data(cfg)
    assert {k: len(v) for k, v in data.sets.items()} == {
        "forget": 24,
        "heldout": 8,
        "paraphrased": 12,
        "retain": 48,
        "unrelated": 12,
    }
    assert cfg.judge_config().kind == "keyword"
    assert len(data.extraction) == 24 and all(p and c.startswith(" ") for p, c in data.extraction)


def test_own_forget_set_gets_no_demo_sets(tmp_path):
    forget = tmp_path / "f.jsonl"
    forget.write_text('{"prompt": "q?", "response": "a b c d"}\n{"text": "raw text to extract from"}\n')
    path = tmp_path / "d.yaml"
    path.write_text(f"forget: {{path: {forget}}}\nredact: true\n")
    cfg = load_eval_config(path, max_new_tokens=7)
    data = load_eval_data(cfg)
    assert set(data.sets) == {"forget"} and cfg.redact and cfg.max_new_tokens == 7
    assert cfg.judge_config().kind == "none"
    assert data.extraction == [("a b", " c d"), ("raw text", " to extract from")]


def test_run_config_yaml_is_accepted(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("name: x\ndata: {forget: null, retain: null, heldout: null, max_length: 128}\n")
    cfg = load_eval_config(path)
    assert cfg.is_demo() and cfg.max_length == 128


def test_errors_name_the_field(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("forget: {path: f.jsonl}\njudge: {kind: oracle}\n")
    with pytest.raises(ConfigError, match="judge.kind"):
        load_eval_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_eval_config(tmp_path / "missing.yaml")
