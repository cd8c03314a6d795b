"""The original model's outputs, live or precomputed once before training (`train.reference`).

Live: the frozen copy (full fine-tuning) or the base with adapters disabled (LoRA) runs on each
batch. Precompute: before the first step the same forward runs once over every micro-step's
batches for the splits the objective compares with the original, and only what the terms read
is kept (per example, on CPU): response log-probs always, logits only on the splits whose whole
distribution a term reads (kl's retain; undial's and whp's forget), and the activations of the
layers a term declares (rmu).
Full fine-tuning then needs no second model in memory. Values are stored per example, keyed by
its tokens, so an example seen in every epoch is computed once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from lm_unlearn.data.tokenize import Batch
from lm_unlearn.head import head_on_rows, head_positions, response_rows
from lm_unlearn.objectives.context import ReferenceProvider, RunContext
from lm_unlearn.objectives.hidden import StopForward, capture_layers
from lm_unlearn.objectives.outputs import Outputs

log = logging.getLogger(__name__)


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Dropout off for the block (the reference is the original model, a deterministic function);
    every submodule's own train/eval flag is put back after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


class LiveReference(ReferenceProvider):
    """Runs the original model on each batch.

    `model` is either a frozen copy or a peft model whose adapters are disabled for the pass;
    in both cases it runs in eval mode, so dropout models (GPT-2, OPT) give the same values live
    and precomputed.
    `extra`: models the terms made before training (`Objective.before_training`, e.g. WHP's
    reinforced model); each also runs, its logits in `Outputs.extra[name]`.
    `original`: False when no term reads the original's own outputs (distill reads only its
    teacher's), so only the extra models run.
    """

    def __init__(
        self, model: torch.nn.Module, extra: dict[str, torch.nn.Module] | None = None, original: bool = True
    ):
        self.model = model
        self.extra = extra or {}
        self.original = original
        self.adapter = hasattr(model, "disable_adapter")

    def outputs(
        self, batch: Batch, layers: tuple[int, ...], full_logits: bool = True, hidden_only: bool = False
    ) -> Outputs:
        if not self.original:
            return Outputs(None, batch, {}, self.extra_logits(batch))
        disabled = self.model.disable_adapter() if self.adapter else nullcontext()
        keep = None if full_logits or self.extra else head_positions(self.model, batch)
        head = {} if keep is None else {"logits_to_keep": keep}
        stop = hidden_only and not self.extra
        logits = None
        with (
            torch.no_grad(),
            disabled,
            eval_mode(self.model),
            capture_layers(self.model, layers, stop) as hidden,
            head_on_rows(self.model, None if keep is None else response_rows(batch, keep)),
        ):
            try:
                logits = self.model(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask, **head
                ).logits
            except StopForward:
                pass  # only the captured layers are read
        if logits is not None:
            # with keep, the head ran on the response rows only: [1, N, V] (head.head_on_rows)
            logits = (logits if keep is None else logits[0]).detach()
        return Outputs(logits, batch, dict(hidden), self.extra_logits(batch), positions=keep)

    @torch.no_grad()
    def extra_logits(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {
            name: other(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            for name, other in self.extra.items()
        }


def _row_key(batch: Batch, row: int) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    n = int(batch.attention_mask[row].sum())
    if not bool(batch.attention_mask[row, :n].all()):
        raise ValueError("precomputed reference values need right-padded batches")
    return n, tuple(batch.input_ids[row, :n].tolist()), tuple(batch.labels[row, :n].tolist())


class PrecomputedReference(ReferenceProvider):
    """Reference outputs looked up per example from a cache filled by `fill`."""

    def __init__(self):
        self.cache: dict[tuple, dict] = {}

    def missing(self, batch: Batch, logits: bool = False) -> bool:
        for i in range(batch.input_ids.shape[0]):
            entry = self.cache.get(_row_key(batch, i)[1:])
            if entry is None or (logits and "logits" not in entry):
                return True
        return False

    def store(self, batch: Batch, out: Outputs, keep_logits: bool = False) -> None:
        for i in range(batch.input_ids.shape[0]):
            n, *key = _row_key(batch, i)
            key = tuple(key)
            if key in self.cache:
                if keep_logits and "logits" not in self.cache[key]:  # also in a response-only split
                    self.cache[key]["logits"] = out.logits[i, :n].cpu()
                continue
            entry = {"token_logprob": out.token_logprob[i, : n - 1].cpu()} if out.has_logits else {}
            if keep_logits:  # [n, V] fp32 per example: only for splits a term reads whole logits of
                entry["logits"] = out.logits[i, :n].cpu()
            entry["hidden"] = {layer: h[i, :n].cpu() for layer, h in out.hidden_states.items()}
            entry["extra"] = {name: v[i, :n].cpu() for name, v in out.extra.items()}
            self.cache[key] = entry

    def outputs(
        self, batch: Batch, layers: tuple[int, ...], full_logits: bool = True, hidden_only: bool = False
    ) -> Outputs:
        rows = []
        for i in range(batch.input_ids.shape[0]):
            key = _row_key(batch, i)[1:]
            if key not in self.cache:
                raise RuntimeError(
                    "train.reference=precompute: a batch was not precomputed (the data or the number of "
                    "steps changed after precomputation); rerun, or use train.reference=live"
                )
            rows.append(self.cache[key])
        width = batch.input_ids.shape[1]
        device = batch.input_ids.device

        def stack(values: list[torch.Tensor], length: int) -> torch.Tensor:
            out = values[0].new_zeros((len(values), length, *values[0].shape[1:]))
            for i, v in enumerate(values):
                out[i, : v.shape[0]] = v
            return out.to(device)

        kept = all("token_logprob" in r for r in rows)  # none when no term reads the original
        token_logprob = stack([r["token_logprob"] for r in rows], width - 1) if kept else None
        if kept and full_logits and not all("logits" in r for r in rows):
            raise RuntimeError("train.reference=precompute kept no logits for this batch's split")
        logits = stack([r["logits"] for r in rows], width) if kept and full_logits else None
        hidden = {layer: stack([r["hidden"][layer] for r in rows], width) for layer in layers}
        extra = {name: stack([r["extra"][name] for r in rows], width) for name in rows[0]["extra"]}
        return Outputs.precomputed(batch, token_logprob, logits, hidden, extra)


def precompute(
    live: LiveReference,
    make_batch: Callable[[str, int], Batch],
    splits: tuple[str, ...],
    micro_steps: int,
    layers: tuple[int, ...],
    keep_logits: tuple[str, ...],
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    device: torch.device | str = "cpu",
) -> PrecomputedReference:
    """Run `live` once on every example of micro-steps [0, micro_steps) of each split."""
    cache = PrecomputedReference()
    was_training = live.model.training
    live.model.eval()
    try:
        for micro_step in range(micro_steps):
            for split in splits:
                batch = make_batch(split, micro_step).to(device)
                full = split in keep_logits
                if cache.missing(batch, logits=full):
                    with autocast():
                        cache.store(batch, live.outputs(batch, layers, full_logits=full), full)
    finally:
        live.model.train(was_training)
    log.info("precomputed reference values for %d examples", len(cache.cache))
    return cache


def reference_mode(mode: str, objective) -> str:
    """`train.reference` resolved: "auto" is "precompute" when the terms read only the original's
    response log-probs (`Objective.reference_is_logprobs`), else "live"."""
    if mode != "auto":
        return mode
    return "precompute" if objective.reference_is_logprobs else "live"


def build_reference(
    mode: str,
    objective,
    model: torch.nn.Module,
    reference_model: torch.nn.Module | None,
    make_batch: Callable[[str, int], Batch],
    micro_steps: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    device: torch.device | str = "cpu",
) -> ReferenceProvider | None:
    """The engine's one call: the provider `StepContext.reference` reads, or None if unused.
    The terms' before_training hooks run here, on the original model (their models join the
    reference).

    Must run before any update (and before a resumed run loads its checkpoint), since `model`
    itself is the original when there is no separate copy.
    """
    if not objective.needs_reference:
        return None
    extra = objective.before_training(RunContext(model, make_batch, autocast, device))
    source = reference_model if reference_model is not None else model
    live = LiveReference(source, extra, original=objective.reads_original)
    if reference_mode(mode, objective) == "live":
        return live
    layers = objective.hidden_layers(model)
    keep_logits = objective.reference_logits  # the splits whose whole reference logits are read
    return precompute(
        live, make_batch, objective.reference_splits, micro_steps, layers, keep_logits, autocast, device
    )
