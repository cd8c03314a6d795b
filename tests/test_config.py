import pytest

from lm_unlearn.config import DEMO_RECIPE, load_config
from lm_unlearn.errors import ConfigError


def test_defaults_run_the_demo_with_its_recipe_and_target():
    cfg = load_config()
    assert cfg.method == "rmu" and cfg.objective == DEMO_RECIPE["objective"]
    assert (cfg.train.mode, cfg.train.lr, cfg.train.max_steps, cfg.train.eval_every) == ("full", 1e-3, 80, 20)
    assert cfg.train.target.judge_rate_max == 0.0
    assert cfg.model.name == "builtin:smollm2-135m-instruct"
    assert cfg.data.forget is None  # the built-in demo


def test_the_demo_keeps_what_the_user_sets_and_own_data_defaults_to_yao(tmp_path):
    cfg = load_config(overrides=["train.lr=5e-4"])
    assert cfg.method == "rmu" and cfg.train.lr == 5e-4 and cfg.train.max_steps == 80
    cfg = load_config(overrides=["objective.rmu.alpha=300"])  # a tweak of the demo's own term
    assert cfg.method == "rmu" and cfg.objective == {"rmu": {"steering_coef": 500.0, "alpha": 300}}
    assert (cfg.train.mode, cfg.train.lr, cfg.train.max_steps) == ("full", 1e-3, 80)
    cfg = load_config(overrides=["objective={npo: 1}"])  # another objective: used as given
    assert cfg.method is None and cfg.objective == {"npo": 1.0} and cfg.train.mode == "lora"
    cfg = load_config(overrides=["method=graddiff"])  # a method given: no demo recipe
    assert cfg.objective is None and (cfg.train.mode, cfg.train.lr, cfg.train.max_steps) == ("lora", 2e-4, 40)
    forget = tmp_path / "f.jsonl"
    forget.write_text('{"prompt": "q", "response": "a"}\n')
    cfg = load_config(overrides=[f"data.forget.path={forget}"])
    assert cfg.method == "yao" and cfg.train.target.judge_rate_max is None


def test_set_overrides_nested_keys_with_typed_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.001\n  max_steps: 3\n")
    cfg = load_config(path, ["train.lr=1e-5", "train.lora.r=4", "objective={ga: 1, kl: 0.5}"])
    assert cfg.train.lr == pytest.approx(1e-5)
    assert cfg.train.max_steps == 3
    assert cfg.train.lora.r == 4
    assert cfg.objective == {"ga": 1.0, "kl": 0.5}


def test_bad_value_names_the_field_and_the_source(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: fast\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "train.lr" in str(err.value) and str(path) in str(err.value) and "fast" in str(err.value)


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="train.learning_rate"):
        load_config(None, ["train.learning_rate=1"])


def test_missing_config_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_set_without_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.lr"])
