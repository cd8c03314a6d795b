"""The in-run baseline of `unlearn perf`: the same method's training step, done the way a stock
Trainer-based unlearning toolkit does it (open-unlearning's GradDiff and NPO trainers, say).

Only how the step runs differs from ours; the loss terms, the batches (the same examples, drawn
by the same seed) and the number of steps are the same. The stock choices, each that kind of
toolkit's default:
- full fine-tuning of the model loaded in fp32, whatever our `train.mode` (a LoRA row's speedup
  is LoRA against a stock full fine-tune); bf16 only as autocast, like Trainer's `bf16=True`;
- one forward per batch (forget, retain, ...), called model(**batch, labels=...): the LM head and
  the model's own fp32 loss run over every position of the padded batch, prompt and padding too;
- a live reference when the method has one: a frozen deep copy of the model, full logits;
- `torch.optim.AdamW` with its fused kernel (Trainer's default optim, `adamw_torch_fused`, since
  torch 2.8) over the trained weights and gradient clipping, no checkpointing.
It reuses our terms, which read response positions from those full logits, so it does a little
less than such a toolkit does (no second whole-batch log-softmax): a conservative baseline.
"""

from __future__ import annotations

import copy
import statistics
import time
from contextlib import nullcontext
from typing import Any

import torch

from lm_unlearn.config import RunConfig
from lm_unlearn.data import PromptFormat
from lm_unlearn.errors import ConfigError
from lm_unlearn.objectives import StepContext, build_objective
from lm_unlearn.objectives.hidden import capture_layers
from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.reference import LiveReference


class StockContext(StepContext):
    """What the terms read, computed the stock way (see the module docstring)."""

    def needs_full_logits(self, split: str) -> bool:
        return True

    def outputs(self, split: str) -> Outputs:
        if split not in self._outputs:
            batch = self.batch(split)
            with self._autocast(), capture_layers(self.model, self.hidden_layers) as hidden:
                out = self.model(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
                )
            self._outputs[split] = Outputs(out.logits, batch, dict(hidden))
        return self._outputs[split]

    def reference(self, split: str) -> Outputs:
        if split not in self._reference:
            batch = self.batch(split)
            with torch.no_grad(), self._autocast():
                self._reference[split] = self._reference_forward.outputs(batch, self.hidden_layers)
        return self._reference[split]


def baseline_method(cfg: RunConfig, warmup: int, steps: int, device: torch.device) -> dict[str, Any]:
    """Time warmup + steps stock optimizer steps of `cfg`'s method; the last `steps` count."""
    from lm_unlearn.attention import use_stock_attention
    from lm_unlearn.models import load_model
    from lm_unlearn.precision import resolve_precision
    from lm_unlearn.training_setup import adamw, fit_max_length, read_training_records, step_data

    t = cfg.train
    objective = build_objective(cfg.method, cfg.objective)
    made_first = [t.term.name for t in objective.terms if t.term.before_training or t.term.generated_answers]
    if made_first:
        raise ConfigError(
            f"no stock baseline for {', '.join(made_first)}: it needs models or answers made "
            "before the run (before_training, generated_answers), which the stock step does not make"
        )
    records = read_training_records(cfg, objective)
    loaded = load_model(
        cfg.model.name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
    )
    model = loaded.model.to(device).train()
    use_stock_attention(model)  # transformers' default sdpa, as a stock trainer runs it
    fmt = PromptFormat.choose(loaded.tokenizer, cfg.model.template, cfg.model.system_prompt)
    data = step_data(cfg, records, fmt, fit_max_length(cfg, model), objective.draws_per_prompt())
    reference = None
    if objective.needs_reference:
        reference = LiveReference(copy.deepcopy(model).eval().requires_grad_(False))
    filters = objective.trainable_filters(model)  # e.g. RMU trains three down_proj weights
    for name, p in model.named_parameters():
        p.requires_grad_(all(f(name) for f in filters))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = adamw(params, t)  # fused, as Trainer's default optim since torch 2.8
    bf16 = resolve_precision(t.precision) == "bf16"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    times, tokens = [], []
    for step in range(warmup + steps):
        start, n = time.perf_counter(), 0
        for micro in range(t.grad_accum):
            micro_step = step * t.grad_accum + micro
            ctx = StockContext(model, lambda s, m=micro_step: data.batch(s, m), reference, autocast, device)
            loss, _ = objective(ctx)
            (loss / t.grad_accum).backward()
            n += ctx.tokens
        torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        tokens.append(n)
    timed = times[warmup:]
    return {
        "mode": "full",
        "precision": "bf16" if bf16 else "fp32",
        "torch_threads": torch.get_num_threads(),
        "step_s": statistics.median(timed),
        "step_s_each": [round(s, 4) for s in timed],
        "tokens_per_step": sum(tokens[warmup:]) / steps,
        "tokens_per_s": sum(tokens[warmup:]) / sum(timed),
    }
