"""SwiGLU MLPs whose backward recomputes silu(gate) instead of keeping it.

A Llama-style MLP computes down(silu(gate(x)) * up(x)). Autograd keeps gate(x) for silu's
backward and silu(gate(x)) and up(x) for the product's: three [tokens, intermediate] tensors a
layer, the largest activations of a small model's training step. `SiluTimesUp` keeps gate(x)
and up(x) and recomputes silu(gate(x)) in backward, one elementwise pass. Forward values and
gradients are bit for bit autograd's: backward calls the ops autograd would,
silu_backward(grad * up, gate) and grad * silu(gate). Training only (`prepare_model`);
measured in docs/performance.md.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

# MLPs whose forward is exactly down_proj(act_fn(gate_proj(x)) * up_proj(x)) (transformers 5)
SWIGLU_MLPS = ("LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP", "OlmoMLP")


class SiluTimesUp(torch.autograd.Function):
    """silu(gate) * up, saving gate and up only."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        gate, up = ctx.saved_tensors
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate) if ctx.needs_input_grad[0] else None
        grad_up = grad * F.silu(gate) if ctx.needs_input_grad[1] else None
        return grad_gate, grad_up


def _swiglu_forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(SiluTimesUp.apply(self.gate_proj(x), self.up_proj(x)))


def recompute_silu_in_mlps(model: torch.nn.Module) -> int:
    """Give `model`'s SWIGLU_MLPS with a SiLU activation the recomputing forward; returns how
    many. Other MLPs (GELU, fused gate_up projections) keep their own."""
    count = 0
    for module in model.modules():
        act = getattr(module, "act_fn", None)
        silu = isinstance(act, torch.nn.SiLU) or type(act).__name__ == "SiLUActivation"
        if type(module).__name__ in SWIGLU_MLPS and silu:
            module.forward = types.MethodType(_swiglu_forward, module)
            count += 1
    return count
