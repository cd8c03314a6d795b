"""A frozen output head tied to the input embeddings, read through one bf16 copy of its weight.

`models.frozen_linears_to` stores frozen Linear weights in bf16 but leaves a tied head alone:
its weight is the embedding matrix, which the lookup must keep reading in fp32 (the residual
stream starts there). So under bf16 autocast every forward cast the whole [V, d] matrix to bf16
for the head (on the default model 28 M values, 2-3 % of a graddiff LoRA step and 5-6 % of an
npo one, docs/performance.md). `Bf16CopyHead` keeps that cast: made once, remade only if the
weight changes (its version counter moves, e.g. a checkpoint loaded into it), and used only
while the weight is frozen and autocast runs in bf16. The products are the ones autocast's cast
gives (the same round-to-nearest); the copy is a buffer that is never saved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Bf16CopyHead(torch.nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if self.weight.requires_grad or not torch.is_autocast_enabled(device):
            return super().forward(x)
        if torch.get_autocast_dtype(device) != torch.bfloat16:
            return super().forward(x)
        return F.linear(x, self._bf16_weight(), self.bias)

    def _bf16_weight(self) -> torch.Tensor:
        stamp = (self.weight._version, self.weight.data_ptr(), self.weight.device)
        if getattr(self, "_bf16_stamp", None) != stamp:
            self.register_buffer("_bf16", self.weight.detach().to(torch.bfloat16), persistent=False)
            self._bf16_stamp = stamp
        return self._bf16


def head_reads_bf16_copy(model: torch.nn.Module) -> bool:
    """Make `model`'s output head a Bf16CopyHead when it is a plain nn.Linear tied to the frozen
    input embeddings; True if it was. Call on the transformers model (peft's wrapper reaches it)."""
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if type(head) is not torch.nn.Linear or embedding is None or head.weight is not embedding.weight:
        return False
    if head.weight.requires_grad:
        return False
    head.__class__ = Bf16CopyHead
    return True
