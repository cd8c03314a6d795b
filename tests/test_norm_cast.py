"""lm_unlearn.norm_cast: a Llama layer's norm outputs cast once to the autocast dtype."""

import torch
from support.archs import tiny_arch
from support.tiny import build_model

from lm_unlearn.models import wrap_lora
from lm_unlearn.norm_cast import cast_norm_outputs_once

IDS = torch.tensor([[1, 5, 9, 3, 7, 2], [2, 8, 4, 6, 1, 3]])


def _loss_and_grads(model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=IDS).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), IDS[:, 1:].flatten())
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _lora_model() -> torch.nn.Module:
    model = wrap_lora(build_model(32, layers=2), r=4, alpha=8, dropout=0.0, target_modules=None)
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    return model


def test_the_projections_read_one_bf16_copy_and_the_run_is_autocast_s_to_rounding():
    plain, hooked = _lora_model(), _lora_model()
    assert cast_norm_outputs_once(hooked) == 4  # 2 layers x (input, post-attention) norms
    seen = []
    q_proj = hooked.get_base_model().model.layers[0].self_attn.q_proj
    q_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
    want_loss, want = _loss_and_grads(plain)
    got_loss, got = _loss_and_grads(hooked)
    assert seen == [torch.bfloat16]
    assert torch.equal(got_loss, want_loss)  # the same bf16 values reach every Linear
    assert got.keys() == want.keys() and any("lora_A" in n for n in got)
    for name in want:  # the readers' gradients are summed in bf16: rounding-level differences
        torch.testing.assert_close(got[name], want[name], rtol=0.02, atol=1e-3)
    with torch.no_grad():  # without autocast the norm output stays fp32
        hooked(input_ids=IDS)
    assert seen[-1] == torch.float32


def test_layers_not_known_to_feed_only_linears_are_left_alone():
    for name in ("llama", "qwen2", "mistral"):  # 3 layers x 2 norms each
        assert cast_norm_outputs_once(tiny_arch(name)) == 6, name
    assert cast_norm_outputs_once(tiny_arch("gpt2")) == 0
    assert cast_norm_outputs_once(tiny_arch("gemma2")) == 0  # post_attention_layernorm feeds the residual
