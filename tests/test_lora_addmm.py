"""lm_unlearn.lora_addmm: peft's LoRA Linear with the scaled adapter product added by addmm."""

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import Linear as LoraLinear

from lm_unlearn.lora_addmm import AddmmLoraLinear
from lm_unlearn.models import load_model, wrap_lora


class _One(torch.nn.Module):
    def __init__(self, bias: bool):
        super().__init__()
        self.lin = torch.nn.Linear(24, 40, bias=bias)


def _layer(bias: bool = True) -> tuple[AddmmLoraLinear, LoraLinear]:
    """The same LoRA layer twice (ours, peft's), B random so the adapter contributes."""
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["lin"])  # scaling 2
    torch.manual_seed(0)
    theirs = inject_adapter_in_model(config, _One(bias)).lin
    torch.nn.init.normal_(theirs.lora_B["default"].weight, std=0.1)
    ours = inject_adapter_in_model(config, _One(bias)).lin
    ours.load_state_dict(theirs.state_dict())
    ours.__class__ = AddmmLoraLinear
    return ours, theirs


def _by_hand(layer: LoraLinear, x: torch.Tensor) -> torch.Tensor:
    """W0 x + b + (alpha / r) B A x (Hu et al., 2021, eq. 3), in fp64."""
    w0, bias = layer.base_layer.weight.double(), layer.base_layer.bias
    b = 0.0 if bias is None else bias.double()
    a, bb = layer.lora_A["default"].weight.double(), layer.lora_B["default"].weight.double()
    x = x.double()
    return x @ w0.T + b + 2.0 * (x @ a.T @ bb.T)


def test_in_fp32_the_output_and_gradients_are_the_paper_sum_and_equal_peft():
    ours, theirs = _layer()
    x = torch.randn(3, 5, 24)
    out_ours, out_theirs = ours(x), theirs(x)
    torch.testing.assert_close(out_ours.double(), _by_hand(ours, x), rtol=1e-6, atol=1e-6)
    assert torch.equal(out_ours, out_theirs)  # scaling 2 is exact, so one rounding either way
    assert out_ours.shape == (3, 5, 40) and out_ours.dtype == torch.float32
    grad = torch.randn_like(out_ours)
    out_ours.backward(grad)
    out_theirs.backward(grad)
    for name in ("lora_A", "lora_B"):
        mine = getattr(ours, name)["default"].weight.grad
        peft_grad = getattr(theirs, name)["default"].weight.grad
        torch.testing.assert_close(mine, peft_grad, rtol=1e-5, atol=1e-6)


def test_under_bf16_autocast_the_sum_is_rounded_once_so_no_less_exact_than_peft():
    ours, theirs = _layer(bias=False)
    ours.base_layer.to(torch.bfloat16)
    theirs.base_layer.to(torch.bfloat16)  # frozen weights stored in bf16, as in training
    x = torch.randn(64, 24)
    expected = _by_hand(ours, x.bfloat16())  # the bf16 inputs autocast multiplies
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_ours, out_theirs = ours(x), theirs(x)
    assert out_ours.dtype == out_theirs.dtype == torch.bfloat16
    err_ours = (out_ours.double() - expected).abs().mean()
    err_theirs = (out_theirs.double() - expected).abs().mean()
    assert err_ours <= err_theirs and err_ours < 0.01 * expected.abs().mean()


def test_a_disabled_adapter_or_a_call_with_arguments_is_peft_s_own_forward():
    ours, _ = _layer()
    x = torch.randn(2, 24)
    with torch.no_grad():
        ours.enable_adapters(False)  # what peft's disable_adapter() does: the reference forward
        torch.testing.assert_close(ours(x), ours.base_layer(x))
        ours.enable_adapters(True)
        assert not torch.allclose(ours(x), ours.base_layer(x))
    assert ours._plain_adapter(x, (), {"adapter_names": ["default", "default"]}) is None
    assert ours._plain_adapter(x, (), {}) == "default"
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["lin"], use_dora=True)
    dora = inject_adapter_in_model(config, _One(True))
    dora.lin.__class__ = AddmmLoraLinear
    assert dora.lin._plain_adapter(x, (), {}) is None  # DoRA: peft's own forward
    with torch.no_grad():
        assert dora.lin(x).shape == (2, 40)


def test_wrap_lora_uses_it_and_saves_merges_like_peft(tmp_path, tiny_model_dir):
    model = load_model(str(tiny_model_dir)).model
    peft_model = wrap_lora(model, r=4, alpha=8, dropout=0.0, target_modules=None)
    layers = [m for m in peft_model.modules() if isinstance(m, LoraLinear)]
    assert layers and all(type(m) is AddmmLoraLinear for m in layers)
    assert all(".lora_A.default." in k or ".lora_B." in k for k in peft_model.state_dict() if "lora_" in k)
    ids = torch.tensor([[1, 5, 9, 3]])
    for m in layers:
        torch.nn.init.normal_(m.lora_B["default"].weight, std=0.1)
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
        merged = peft_model.merge_and_unload()
        assert not any(isinstance(m, LoraLinear) for m in merged.modules())
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted, rtol=1e-4, atol=1e-5)
