"""SwiGLU MLPs that recompute silu(gate) in backward: autograd's values and gradients, bit for
bit, with less kept for backward."""

import copy

import pytest
import torch

from lm_unlearn.swiglu import recompute_silu_in_mlps


def saved_bytes(model, ids) -> int:
    """Bytes of the distinct tensors autograd keeps for backward in one forward."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids)
    return sum(seen.values())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_values_and_gradients_equal_autograds_bit_for_bit(precision):
    from support.archs import tiny_arch

    plain = tiny_arch("llama").train()
    patched = copy.deepcopy(plain)
    assert recompute_silu_in_mlps(patched) == 3
    ids = torch.randint(3, 60, (2, 9))
    outputs = []
    for model in (plain, patched):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(input_ids=ids).logits
        logits.float().square().mean().backward()
        outputs.append((logits, [p.grad for p in model.parameters()]))
    (want, want_grads), (got, got_grads) = outputs
    assert torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(got_grads, want_grads))
    assert saved_bytes(patched, ids) < saved_bytes(plain, ids)


def test_only_silu_mlps_of_the_plain_form_are_changed():
    from support.archs import tiny_arch

    for name in ("llama", "qwen2", "mistral", "olmo"):
        assert recompute_silu_in_mlps(tiny_arch(name)) == 3, name
    for name in ("gemma", "gemma2", "gpt2", "opt"):  # GELU, or no gate/up MLP
        assert recompute_silu_in_mlps(tiny_arch(name)) == 0, name
