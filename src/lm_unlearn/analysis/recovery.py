"""Knowledge recovery: put parts of the original model back into the unlearned one, layer window
by layer window, and measure how much of the original's behaviour on the forget answers returns.

Hong et al., "Dissecting Fine-Tuning Unlearning in Large Language Models", EMNLP 2024. Their
finding: unlearning by fine-tuning mostly changes the MLP coefficients (what the MLP reads), not
the value vectors (what it writes), so patching activations recovers much, restoring weights
little. Interventions, each applied to every layer of a window of consecutive layers:

  mlp_coef           patch the input of the MLP output projection with the original's activations
  attn_out           patch the attention output (after its output projection) likewise
  mlp_coef+attn_out  both
  mlp_value          restore the MLP output projection's weights (and bias) from the original
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from lm_unlearn.analysis import arch
from lm_unlearn.data import PromptFormat, Record
from lm_unlearn.data.tokenize import IGNORE, Batch, collate, encode
from lm_unlearn.errors import ModelError

INTERVENTIONS = ("mlp_coef", "attn_out", "mlp_coef+attn_out", "mlp_value")


def krs(original: torch.Tensor, unlearned: torch.Tensor, recovered: torch.Tensor) -> float:
    """Knowledge Recovery Score (Hong et al., 2024), on logits at the same positions:

    KRS = 1 - MSE(original, recovered) / MSE(original, unlearned), in fp32.
    1: the intervention gives back the original logits; 0: no change from the unlearned model;
    negative: further away. NaN when the unlearned logits equal the original ones.
    """
    base = _sse(original, unlearned)
    return float("nan") if base == 0.0 else 1.0 - _sse(original, recovered) / base


def _sse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Sum of squared differences in fp32 (equal counts on both sides, so MSE ratios equal SSE ratios)."""
    return float((a.float() - b.float()).pow(2).sum())


def answer_positions(batch: Batch) -> torch.Tensor:
    """[B, T] bool: positions whose logits predict an answer token (logit t predicts token t+1)."""
    mask = torch.zeros_like(batch.labels, dtype=torch.bool)
    mask[:, :-1] = batch.labels[:, 1:] != IGNORE
    return mask


def layer_windows(num_layers: int, size: int, first: int = 0, last: int | None = None) -> list[range]:
    """Every window of `size` consecutive layers within [first, last], sliding by one."""
    last = num_layers - 1 if last is None else last
    if not 0 <= first <= last < num_layers:
        raise ModelError(f"layer range {first}..{last} is outside the model's layers 0..{num_layers - 1}")
    size = min(size, last - first + 1)
    if size < 1:
        raise ModelError(f"window size must be at least 1, got {size}")
    return [range(s, s + size) for s in range(first, last - size + 2)]


@dataclass
class Activations:
    """The original model's activations on one batch, per layer."""

    mlp_in: list[torch.Tensor] = field(default_factory=list)  # inputs of the MLP output projection
    attn_out: list[torch.Tensor] = field(default_factory=list)  # outputs of the attention projection


@torch.no_grad()
def record_activations(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Activations]:
    """Run `model` on `batch`; return its logits and the activations the patches need."""
    acts = Activations()
    n = arch.num_layers(model)
    acts.mlp_in, acts.attn_out = [None] * n, [None] * n
    handles = []
    for layer in range(n):

        def save_in(module, args, layer=layer):
            acts.mlp_in[layer] = args[0].detach()

        def save_out(module, args, output, layer=layer):
            acts.attn_out[layer] = output.detach()

        handles.append(arch.mlp_out(model, layer).register_forward_pre_hook(save_in))
        handles.append(arch.attn_out(model, layer).register_forward_hook(save_out))
    try:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    finally:
        for h in handles:
            h.remove()
    return logits, acts


def _replace(current: torch.Tensor, source: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor:
    if where is None:
        return source.to(current.dtype)
    # OPT runs its MLP on flattened [B*T, D] states; the position mask follows that shape.
    return torch.where(where.reshape(current.shape[:-1]).unsqueeze(-1), source.to(current.dtype), current)


@contextmanager
def intervene(
    model: nn.Module,
    layers: range | list[int],
    intervention: str,
    acts: Activations | None = None,
    original: nn.Module | None = None,
    where: torch.Tensor | None = None,
) -> Iterator[None]:
    """Apply one intervention to `layers` of `model` for the duration of the block.

    `where` ([B, T] bool) limits activation patches to those positions; weights are restored
    for all positions. On exit every hook is removed and every weight put back.
    """
    if intervention not in INTERVENTIONS:
        raise ModelError(f"unknown intervention {intervention!r}; known: {', '.join(INTERVENTIONS)}")
    parts = intervention.split("+")
    handles, swapped = [], []
    try:
        for layer in layers:
            if "mlp_coef" in parts:

                def patch_in(module, args, layer=layer):
                    return (_replace(args[0], acts.mlp_in[layer], where), *args[1:])

                handles.append(arch.mlp_out(model, layer).register_forward_pre_hook(patch_in))
            if "attn_out" in parts:

                def patch_out(module, args, output, layer=layer):
                    return _replace(output, acts.attn_out[layer], where)

                handles.append(arch.attn_out(model, layer).register_forward_hook(patch_out))
            if "mlp_value" in parts:
                target, source = arch.mlp_out(model, layer), arch.mlp_out(original, layer)
                for name, param in target.named_parameters(recurse=False):
                    # Swap storage rather than copy: nothing is written, and exit restores exactly.
                    swapped.append((param, param.data))
                    param.data = getattr(source, name).data.to(param.dtype)
        yield
    finally:
        for h in handles:
            h.remove()
        for param, data in swapped:
            param.data = data


def _check_pair(original: nn.Module, unlearned: nn.Module) -> None:
    if original.config.model_type != unlearned.config.model_type:
        raise ModelError(
            f"original is {original.config.model_type!r} but unlearned is {unlearned.config.model_type!r}; "
            "recovery needs the same architecture"
        )
    a, b = arch.num_layers(original), arch.num_layers(unlearned)
    if a != b:
        raise ModelError(f"original has {a} layers, unlearned {b}; recovery needs the same shape")


@torch.no_grad()
def recovery_scores(
    original: nn.Module,
    unlearned: nn.Module,
    batches: list[Batch],
    windows: list[range],
    interventions: tuple[str, ...] = INTERVENTIONS,
    answer_only: bool = False,
) -> dict[str, list[float]]:
    """KRS per intervention per window, pooled over every answer position of every batch.

    Sums of squared errors are accumulated over batches before the ratio is taken, so the
    score does not depend on how the questions are batched.
    """
    _check_pair(original, unlearned)
    original.eval()
    unlearned.eval()
    base = 0.0
    sse = {name: [0.0] * len(windows) for name in interventions}
    bar = tqdm(total=len(batches) * len(interventions) * len(windows), desc="recovery", leave=False)
    for batch in batches:
        positions = answer_positions(batch)
        ref_logits, acts = record_activations(original, batch)
        ref = ref_logits[positions].float()

        def run(batch: Batch = batch, positions: torch.Tensor = positions) -> torch.Tensor:
            return unlearned(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[positions]

        base += _sse(ref, run())
        where = positions if answer_only else None
        for name in interventions:
            for i, layers in enumerate(windows):
                with intervene(unlearned, layers, name, acts, original, where):
                    sse[name][i] += _sse(ref, run())
                bar.update(1)
    bar.close()
    if base == 0.0:
        nan = float("nan")
        return {name: [nan] * len(windows) for name in interventions}
    return {name: [1.0 - s / base for s in values] for name, values in sse.items()}


def question_batches(
    records: list[Record], fmt: PromptFormat, batch_size: int = 8, max_length: int = 256
) -> list[Batch]:
    examples = [encode(r, fmt, max_length) for r in records]
    pad = fmt.tokenizer.pad_token_id
    return [collate(examples[i : i + batch_size], pad) for i in range(0, len(examples), batch_size)]


def analyze_recovery(
    original: nn.Module,
    unlearned: nn.Module,
    records: list[Record],
    fmt: PromptFormat,
    window: int = 5,
    first_layer: int = 0,
    last_layer: int | None = None,
    answer_only: bool = False,
    interventions: tuple[str, ...] = INTERVENTIONS,
    batch_size: int = 8,
) -> dict:
    """Recovery analysis on the forget questions; returns a JSON-ready result.

    Windows of `window` consecutive layers slide by one over [first_layer, last_layer].
    `answer_only` patches activations only at the positions whose logits are scored (the last
    prompt token and every answer token but the last); otherwise at every position.
    """
    windows = layer_windows(arch.num_layers(unlearned), window, first_layer, last_layer)
    device = next(unlearned.parameters()).device
    batches = [b.to(device) for b in question_batches(records, fmt, batch_size)]
    scores = recovery_scores(original, unlearned, batches, windows, interventions, answer_only)
    return {
        "method": "KRS = 1 - MSE(original, recovered) / MSE(original, unlearned) (Hong et al., 2024)",
        "window": len(windows[0]),
        "windows": [[w.start, w.stop - 1] for w in windows],
        "answer_only": answer_only,
        "questions": len(records),
        "answer_tokens": int(sum(answer_positions(b).sum() for b in batches)),
        "krs": scores,
    }
