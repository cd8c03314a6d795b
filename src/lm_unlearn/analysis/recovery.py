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

As in the paper (defaults): each question is scored on the original model's own greedy answer
(30 new tokens), KRS is computed per question and then averaged, and there is one window per
layer, centred on it and truncated at the edges. The earlier forms stay available by name:
`answers="dataset"` (the data set's reference answers), `aggregate="pooled"` (squared errors
summed over all questions before the ratio) and `align="start"` (windows starting at each layer
that fits a whole window).
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
ANSWERS = ("original_greedy", "dataset")  # what is scored: the original's greedy answers, or the data's
AGGREGATES = ("per_question", "pooled")  # mean of per-question KRS (Hong et al.), or one pooled ratio
ALIGNS = ("centred", "start")  # windows centred on every layer (Hong et al.), or starting at each
GREEDY_TOKENS = 30  # the paper's answer length


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


def layer_windows(
    num_layers: int, size: int, first: int = 0, last: int | None = None, align: str = "centred"
) -> list[range]:
    """Windows of `size` consecutive layers within [first, last].

    "centred" (Hong et al.): one per layer l in [first, last], l-(size-1)//2 .. l+size//2,
    truncated at first and last. "start": every whole window, starting at first, first+1, ...
    """
    last = num_layers - 1 if last is None else last
    if not 0 <= first <= last < num_layers:
        raise ModelError(f"layer range {first}..{last} is outside the model's layers 0..{num_layers - 1}")
    if size < 1:
        raise ModelError(f"window size must be at least 1, got {size}")
    if align == "centred":
        before, after = (size - 1) // 2, size // 2
        return [range(max(first, c - before), min(last, c + after) + 1) for c in range(first, last + 1)]
    if align != "start":
        raise ModelError(f"unknown window alignment {align!r}; known: {', '.join(ALIGNS)}")
    size = min(size, last - first + 1)
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


def _row_sse(a: torch.Tensor, b: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[B] sums of squared logit differences over each row's scored positions, in fp32."""
    per_position = (a.float() - b.float()).pow(2).sum(dim=-1)
    return (per_position * positions).sum(dim=-1)


def aggregate_krs(base: torch.Tensor, patched: torch.Tensor, aggregate: str = "per_question") -> float:
    """KRS from per-question squared errors (equal counts on both sides, so SSE ratios = MSE ratios).

    "per_question" (Hong et al.): mean_i [1 - SSE_i(original, patched) / SSE_i(original, unlearned)],
    over questions whose unlearned logits differ from the original's (others have no ratio).
    "pooled": 1 - sum_i SSE_i(original, patched) / sum_i SSE_i(original, unlearned).
    NaN when no question changed.
    """
    if aggregate == "pooled":
        total = float(base.sum())
        return float("nan") if total == 0.0 else 1.0 - float(patched.sum()) / total
    if aggregate != "per_question":
        raise ModelError(f"unknown KRS aggregate {aggregate!r}; known: {', '.join(AGGREGATES)}")
    changed = base > 0
    return float((1.0 - patched[changed] / base[changed]).mean()) if bool(changed.any()) else float("nan")


@torch.no_grad()
def recovery_scores(
    original: nn.Module,
    unlearned: nn.Module,
    batches: list[Batch],
    windows: list[range],
    interventions: tuple[str, ...] = INTERVENTIONS,
    answer_only: bool = False,
    aggregate: str = "per_question",
) -> dict[str, list[float]]:
    """KRS per intervention per window over the answer positions of every batch (`aggregate_krs`).

    Squared errors are kept per question, so the score does not depend on how questions are batched.
    """
    _check_pair(original, unlearned)
    original.eval()
    unlearned.eval()
    base: list[torch.Tensor] = []
    sse: dict[str, list[list[torch.Tensor]]] = {name: [[] for _ in windows] for name in interventions}
    bar = tqdm(total=len(batches) * len(interventions) * len(windows), desc="recovery", leave=False)
    for batch in batches:
        positions = answer_positions(batch)
        ref, acts = record_activations(original, batch)

        def run(batch: Batch = batch) -> torch.Tensor:
            return unlearned(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits

        base.append(_row_sse(ref, run(), positions))
        where = positions if answer_only else None
        for name in interventions:
            for i, layers in enumerate(windows):
                with intervene(unlearned, layers, name, acts, original, where):
                    sse[name][i].append(_row_sse(ref, run(), positions))
                bar.update(1)
    bar.close()
    all_base = torch.cat(base)
    return {
        name: [aggregate_krs(all_base, torch.cat(rows), aggregate) for rows in per_window]
        for name, per_window in sse.items()
    }


def original_answers(
    original: nn.Module, records: list[Record], fmt: PromptFormat, max_new_tokens: int = GREEDY_TOKENS
) -> list[Record]:
    """The forget questions with the original model's greedy answers (Hong et al. score these).

    Raw-text records have no question and keep their text; questions the original answers with
    nothing are left out (they have no answer positions).
    """
    from lm_unlearn.evaluation.generation import generate

    questions = [r for r in records if not r.is_text]
    texts = generate(
        original,
        fmt.tokenizer,
        [fmt.prompt_text(r.prompt) for r in questions],
        add_special_tokens=fmt.kind != "chat",
        max_new_tokens=max_new_tokens,
    ).texts
    answered = iter(Record(r.prompt, a, r.source) for r, a in zip(questions, texts))
    out = [r if r.is_text else next(answered) for r in records]
    return [r for r in out if r.response.strip()]


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
    answers: str = "original_greedy",
    aggregate: str = "per_question",
    align: str = "centred",
) -> dict:
    """Recovery analysis on the forget questions; returns a JSON-ready result.

    Windows of `window` layers within [first_layer, last_layer] (`layer_windows`, `align`); the
    answers scored are the original's greedy ones or the data set's (`answers`); KRS is averaged
    per question or pooled (`aggregate`). `answer_only` patches activations only at the positions
    whose logits are scored (the last prompt token and every answer token but the last);
    otherwise at every position.
    """
    if answers not in ANSWERS:
        raise ModelError(f"unknown answers {answers!r}; known: {', '.join(ANSWERS)}")
    windows = layer_windows(arch.num_layers(unlearned), window, first_layer, last_layer, align)
    if answers == "original_greedy":
        records = original_answers(original, records, fmt)
    device = next(unlearned.parameters()).device
    batches = [b.to(device) for b in question_batches(records, fmt, batch_size)]
    scores = recovery_scores(original, unlearned, batches, windows, interventions, answer_only, aggregate)
    last = arch.num_layers(unlearned) - 1 if last_layer is None else last_layer
    return {
        "method": "KRS = 1 - MSE(original, recovered) / MSE(original, unlearned) (Hong et al., 2024)",
        "answers": answers,
        "aggregate": aggregate,
        "align": align,
        "window": window,
        "windows": [[w.start, w.stop - 1] for w in windows],
        "centres": list(range(first_layer, last + 1)) if align == "centred" else None,
        "answer_only": answer_only,
        "questions": len(records),
        "answer_tokens": int(sum(answer_positions(b).sum() for b in batches)),
        "krs": scores,
    }
