"""lm_unlearn.attention: sdpa computed in fp32 on CPU under bf16 autocast, and never saved."""

import json
import math

import torch
from transformers import AutoModelForCausalLM

from lm_unlearn.attention import NAME, sdpa_fp32_on_cpu, use_stock_attention
from lm_unlearn.models import load_model, save_model


class _Heads(torch.nn.Module):
    num_key_value_groups = 1
    is_causal = True
    training = False


def _by_hand(q, k, v, mask):
    """softmax(q kᵀ / √d + mask) v, in fp64."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)  # transformers returns [B, T, H, D]


def test_under_autocast_the_attention_is_computed_in_fp32():
    torch.manual_seed(0)
    q, k = (torch.randn(2, 3, 7, 16) for _ in range(2))
    v = torch.randn(2, 3, 7, 16).bfloat16()  # as from a bf16 v_proj; rotary upcasts q and k
    mask = torch.ones(2, 1, 7, 7, dtype=torch.bool).tril()
    mask[0, :, :, 5:] = False  # row 0 is padded after 5 tokens
    expected = _by_hand(q, k, v, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = sdpa_fp32_on_cpu(_Heads(), q, k, v, mask, scaling=1 / math.sqrt(16))
        stock = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
    assert ours.dtype == torch.bfloat16  # what autocast gives the next layer
    # ours: the exact attention rounded once to bf16 at the end, so within half a bf16 ulp
    # (2^-8 relative) of it, plus fp32's own error: 2e-7 on an element of 5e-5 on an AMD EPYC,
    # whose fp32 kernel then rounded it the other way
    torch.testing.assert_close(ours.double(), expected, atol=1e-6, rtol=2**-8)
    ours_err = (ours.double() - expected).abs().mean().item()
    stock_err = (stock.double() - expected).abs().mean().item()
    assert stock_err > 1.5 * ours_err  # the stock kernel also rounds q, k, v and its products


def test_without_autocast_it_is_transformers_sdpa(tiny):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    mask = torch.ones(1, 1, 5, 5, dtype=torch.bool).tril()
    out, _ = sdpa_fp32_on_cpu(_Heads(), q, k, v, mask, scaling=1 / math.sqrt(8))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _by_hand(q, k, v, mask), atol=1e-6, rtol=1e-6)


def test_loaded_models_use_it_and_saved_ones_do_not_name_it(tiny, tmp_path):
    assert tiny.model.config._attn_implementation == NAME
    save_model(tiny.model, tiny.tokenizer, tmp_path / "out")
    assert "attn" not in json.dumps(json.loads((tmp_path / "out" / "config.json").read_text()))
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "out")  # transformers alone loads it
    assert plain.config._attn_implementation == "sdpa"
    ids = torch.tensor([[1, 5, 9, 4, 2]])
    with torch.no_grad():  # fp32: the same attention, so the same logits
        torch.testing.assert_close(tiny.model(ids).logits, plain(ids).logits, atol=1e-5, rtol=1e-5)
    use_stock_attention(tiny.model)
    assert tiny.model.config._attn_implementation == "sdpa"


def test_reloaded_through_load_model(tiny_model_dir):
    assert load_model(str(tiny_model_dir)).model.config._attn_implementation == NAME
