"""lm_unlearn.tied_head: a frozen tied head reads one bf16 copy of its weight under autocast."""

import torch
from support.archs import CONFIGS
from support.tiny import tiny_run_config
from transformers import LlamaForCausalLM

from lm_unlearn.objectives import build_objective
from lm_unlearn.tied_head import Bf16CopyHead, head_reads_bf16_copy
from lm_unlearn.training_setup import prepare_model

IDS = torch.tensor([[1, 5, 9, 3, 7], [2, 8, 4, 6, 1]])


def _tied(tie: bool = True) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = CONFIGS["llama"]()
    config.tie_word_embeddings = tie
    return LlamaForCausalLM(config).eval().requires_grad_(False)


def _logits(model: LlamaForCausalLM, autocast: bool = True) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return model(input_ids=IDS).logits


def test_the_copy_gives_autocast_s_own_products_and_is_made_once_per_weight_version():
    model = _tied()
    expected, expected_fp32 = _logits(model), _logits(model, autocast=False)
    assert head_reads_bf16_copy(model) and type(model.lm_head) is Bf16CopyHead
    assert model.lm_head.weight is model.get_input_embeddings().weight  # still tied
    assert torch.equal(_logits(model), expected)  # the same round-to-nearest cast
    copy = model.lm_head._bf16
    assert copy.dtype == torch.bfloat16 and torch.equal(_logits(model), expected)
    assert model.lm_head._bf16 is copy  # not remade while the weight is unchanged
    assert "lm_head._bf16" not in model.state_dict()  # never saved
    assert torch.equal(_logits(model, autocast=False), expected_fp32)  # fp32: the weight itself

    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(2)  # e.g. a checkpoint loaded in place
    changed = _logits(model)
    assert model.lm_head._bf16 is not copy
    model.lm_head.__class__ = torch.nn.Linear
    assert torch.equal(changed, _logits(model))


def test_only_a_frozen_head_tied_to_the_embeddings_is_switched():
    assert not head_reads_bf16_copy(_tied(tie=False))  # frozen_linears_to stores it in bf16
    trained = _tied().requires_grad_(True)
    assert not head_reads_bf16_copy(trained)  # it changes every step: autocast's cast it is


def test_a_lora_run_with_bf16_frozen_weights_switches_a_tied_head(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.mode": "lora"})
    objective = build_objective("graddiff", None)
    model = prepare_model(cfg, objective, _tied().train(), "cpu", "bf16")[0]
    assert type(model.get_output_embeddings()) is Bf16CopyHead
    untouched = prepare_model(cfg, objective, _tied().train(), "cpu", "bf16", sharded=True)[0]
    assert type(untouched.get_output_embeddings()) is torch.nn.Linear
