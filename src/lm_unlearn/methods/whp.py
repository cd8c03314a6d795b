"""Who's Harry Potter: the reinforced model, fine-tuned on the forget set before unlearning."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from lm_unlearn.data.tokenize import Batch
from lm_unlearn.objectives.outputs import Outputs

log = logging.getLogger(__name__)


def train_reinforced(
    model: torch.nn.Module,
    make_batch: Callable[[str, int], Batch],
    steps: int,
    lr: float,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """A frozen fp32 copy of `model` after `steps` AdamW steps of forget-set NLL (full weights).

    `model` must still be the original: a LoRA wrapper is merged into a plain copy first
    (its freshly initialised adapters add nothing), so the copy trains all weights. The copy
    is fp32 whatever `model` stores: the default LoRA + bf16 set-up keeps the frozen base in
    bf16, where an AdamW step at lr 1e-5 is below half an ulp of most weights, and the copy
    barely moved (mean |dw| 1.9e-5 instead of 2e-4 after 20 steps on the tiny test model).
    Autocast still runs the matmuls in bf16; the fp32 weights accumulate the small steps.
    """
    reinforced = copy.deepcopy(model)
    if hasattr(reinforced, "merge_and_unload"):
        reinforced = reinforced.merge_and_unload()
    reinforced.to(device=device, dtype=torch.float32).train().requires_grad_(True)
    optimizer = torch.optim.AdamW(reinforced.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        batch = make_batch("forget", step).to(device)
        with autocast():
            logits = reinforced(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss = Outputs(logits, batch).mean_nll.mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.info("whp reinforced model: step %d/%d, forget NLL %.4f", step + 1, steps, loss.item())
    return reinforced.eval().requires_grad_(False)
