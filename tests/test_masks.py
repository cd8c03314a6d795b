"""train.mask: unselected parameters stay bit-identical; saliency keeps the top fraction."""

import math

import pytest
import torch
from support.runs import changed, weights
from support.tiny import tiny_run_config

from lm_unlearn.engine import train
from lm_unlearn.errors import ConfigError
from lm_unlearn.masks import layer_of, top_fraction


def run(tmp_path, model_dir, **settings):
    cfg = tiny_run_config(tmp_path, model_dir, **{"method": "ga", "train.max_steps": 3, **settings})
    result = train(cfg, tmp_path / "run")
    return result.run_dir / "model"


def test_top_fraction_and_layer_of_by_hand():
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.8, 0.2, 0.05]])
    assert top_fraction(scores, 0.5).tolist() == [[False, True, True], [True, False, False]]
    assert top_fraction(scores, 1e-9).sum() == 1
    assert layer_of("model.layers.12.mlp.down_proj.weight") == 12
    assert layer_of("model.embed_tokens.weight") is None


def test_name_mask_leaves_every_other_parameter_bit_identical(tmp_path, tiny_model_dir):
    before = weights(tiny_model_dir)
    after = weights(run(tmp_path, tiny_model_dir, **{"train.mask.params": "['mlp\\.down_proj']"}))
    assert changed(before, after) == {f"model.layers.{i}.mlp.down_proj.weight" for i in (0, 1)}


def test_layer_mask(tmp_path, tiny_model_dir):
    before = weights(tiny_model_dir)
    moved = changed(before, weights(run(tmp_path, tiny_model_dir, **{"train.mask.layers": "[1]"})))
    assert moved and all(".layers.1." in name for name in moved)


def test_saliency_mask_changes_only_the_top_fraction_of_each_tensor(tmp_path, tiny_model_dir):
    before = weights(tiny_model_dir)
    settings = {"train.mask.params": "['self_attn']", "train.mask.saliency": 0.1}
    after = weights(run(tmp_path, tiny_model_dir, **settings))
    moved = changed(before, after)
    assert moved and all("self_attn" in name for name in moved)
    for name in moved:
        entries = int((before[name] != after[name]).sum())
        assert 0 < entries <= math.ceil(0.1 * before[name].numel()), name


def test_saliency_needs_full_mode_and_no_weight_decay(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="mode=full"):
        run(tmp_path / "a", tiny_model_dir, **{"train.mask.saliency": 0.1, "train.mode": "lora"})
    with pytest.raises(ConfigError, match="weight_decay"):
        run(tmp_path / "b", tiny_model_dir, **{"train.mask.saliency": 0.1, "train.weight_decay": 0.1})


def test_a_mask_matching_nothing_is_a_clear_error(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="selects no trainable parameter"):
        run(tmp_path, tiny_model_dir, **{"train.mask.params": "['no_such_module']"})


def test_rmu_trains_only_its_layers_down_projection(tmp_path, tiny_model_dir):
    before = weights(tiny_model_dir)
    model_dir = run(tmp_path, tiny_model_dir, method="rmu")
    assert changed(before, weights(model_dir)) == {"model.layers.0.mlp.down_proj.weight"}
