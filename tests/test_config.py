import pytest

from lm_unlearn.config import load_config
from lm_unlearn.errors import ConfigError


def test_defaults_run_the_demo_with_the_yao_recipe():
    cfg = load_config()
    assert cfg.method == "yao"
    assert cfg.model.name == "builtin:smollm2-135m-instruct"
    assert cfg.data.forget is None  # the built-in demo


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
