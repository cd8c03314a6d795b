"""peft's LoRA Linear with the adapter's scaled product added inside one `addmm`.

peft computes ``result = base(x) + lora_B(lora_A(dropout(x))) * scaling``: after the base
matmul, a product over the whole [tokens, out] output, a scaled copy of it and a sum, and in
backward one more scaled copy. ``addmm(base(x), lora_A(dropout(x)), B^T, alpha=scaling)``
is the same sum (Hu et al., 2021, eq. 3: h = W0 x + (alpha / r) B A x) with the product
accumulated into the base output by the matmul itself. On the default model that is 4-5 % of
a graddiff LoRA step (docs/performance.md). In fp32 the two agree exactly when `scaling` is a
power of two (the default alpha / r = 2); under bf16 autocast the sum is rounded once instead
of twice.

Only the plain case is taken: one active adapter, not merged, no DoRA or other variant, no
LoRA bias, no per-call arguments. Everything else (a disabled adapter for the reference
forward, mixed-adapter batches) is peft's own forward. Saved adapters are peft's: the
parameters and their names do not change.
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.lora import Linear as LoraLinear


class AddmmLoraLinear(LoraLinear):
    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        name = self._plain_adapter(x, args, kwargs)
        if name is None:
            return super().forward(x, *args, **kwargs)
        result = self.base_layer(x)
        lora_a, lora_b = self.lora_A[name], self.lora_B[name]
        hidden = lora_a(self.lora_dropout[name](self._cast_input_dtype(x, lora_a.weight.dtype)))
        flat = torch.addmm(
            result.reshape(-1, result.shape[-1]),
            hidden.reshape(-1, hidden.shape[-1]),
            lora_b.weight.t(),
            alpha=self.scaling[name],
        )
        return flat.view(result.shape)

    def _plain_adapter(self, x: torch.Tensor, args: tuple, kwargs: dict) -> str | None:
        """The one active adapter when this call is plain LoRA, else None. Without autocast the
        base and adapter weights must share a dtype (peft casts between them; addmm cannot)."""
        if args or kwargs or self.disable_adapters or self.merged or len(self.active_adapters) != 1:
            return None
        name = self.active_adapters[0]
        variant = name in getattr(self, "lora_variant", {}) or getattr(self, "use_dora", {}).get(name, False)
        if name not in self.lora_A or variant or self.lora_B[name].bias is not None:
            return None
        same_dtype = self.base_layer.weight.dtype == self.lora_B[name].weight.dtype == x.dtype
        return name if same_dtype or torch.is_autocast_enabled(x.device.type) else None


def use_addmm_lora(model: torch.nn.Module) -> int:
    """Make peft's plain LoRA Linear layers in `model` AddmmLoraLinear; returns their count.
    Only the exact class is switched (a subclass may override forward itself)."""
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    for layer in layers:
        layer.__class__ = AddmmLoraLinear
    return len(layers)
