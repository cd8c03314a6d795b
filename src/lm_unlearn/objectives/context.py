"""What a loss term sees in one micro-step: lazily built batches and cached forward passes.

A term asks for `ctx.outputs("forget")` or `ctx.reference("retain")`; each (model state,
batch) pair is computed at most once per micro-step however many terms use it, and the
engine never needs to know which batches a term wants.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from lm_unlearn.data.tokenize import IGNORE, Batch
from lm_unlearn.head import head_on_rows, head_positions, response_rows
from lm_unlearn.objectives.hidden import StopForward, capture_layers
from lm_unlearn.objectives.outputs import Outputs


class ReferenceProvider:
    """The original model's outputs on a batch: live (objectives/reference.py) or precomputed."""

    def outputs(
        self, batch: Batch, layers: tuple[int, ...], full_logits: bool = True, hidden_only: bool = False
    ) -> Outputs:
        """full_logits=False: only response log-probs are read (Outputs may hold response logits);
        hidden_only: only the captured layers are read (the forward may stop there, no logits)."""
        raise NotImplementedError


@dataclass(frozen=True)
class RunContext:
    """What a term's lifecycle hooks see (`@term(..., before_training=..., after_training=...)`):
    once before the first step, and once after the last."""

    model: torch.nn.Module  # unwrapped; before training it is still the original
    batch: Callable[[str, int], Batch] | None = None  # the run's batches by (split, micro-step)
    autocast: Callable[[], AbstractContextManager] = nullcontext
    device: torch.device | str = "cpu"
    # The source model's weights (theta_0), loaded only when called, so none is held in training.
    original: Callable[[], dict[str, torch.Tensor]] | None = None


class StepContext:
    def __init__(
        self,
        model: torch.nn.Module,
        make_batch: Callable[[str], Batch],
        reference_forward: Callable[[Batch], torch.Tensor] | ReferenceProvider | None = None,
        autocast: Callable[[], AbstractContextManager] = nullcontext,
        device: torch.device | str = "cpu",
    ):
        self.model = model
        self._make_batch = make_batch
        self._reference_forward = reference_forward
        self._autocast = autocast
        self.device = device
        self._batches: dict[str, Batch] = {}
        self._outputs: dict[str, Outputs] = {}
        self._reference: dict[str, Outputs] = {}
        # Decoder layers whose outputs every forward records (set by the Objective from its
        # terms' declarations, e.g. RMU's steering layer); empty means no hooks at all.
        self.hidden_layers: tuple[int, ...] = ()
        # Splits whose current-model forwards run as one concatenated batch (the engine sets the
        # splits its objective reads). Its matmuls are taller, and under bf16 autocast casts fp32
        # frozen weights and keeps those copies for backward once, not once per split
        # (docs/performance.md).
        self.together: tuple[str, ...] = ()
        # Set by the Objective: the splits some term reads whole logits of (None: every split).
        # On the others the LM head runs only on the positions predicting response tokens, and
        # they are not joined with full-logit splits.
        self.full_logits: tuple[str, ...] | None = None
        # The running term's persistent values (set by the Objective before each term; saved in
        # checkpoints): a term that keeps state across steps reads and writes them here.
        self.state: dict[str, float] = {}
        # Set by the Objective: no term reads logits, so forwards stop after the captured layers.
        self.hidden_only = False

    def needs_full_logits(self, split: str) -> bool:
        return self.full_logits is None or split in self.full_logits

    def batch(self, split: str) -> Batch:
        if split not in self._batches:
            self._batches[split] = self._make_batch(split).to(self.device)
        return self._batches[split]

    def outputs(self, split: str) -> Outputs:
        """Current model on `split`, with gradients."""
        if split not in self._outputs:
            full = self.needs_full_logits(split)
            group = [s for s in self.together if s not in self._outputs and self.needs_full_logits(s) == full]
            group = group if split in group else []
            batches = [self.batch(s) for s in group]
            if len(group) < 2 or not all(_right_padded(b) for b in batches):
                group, batches = [split], [self.batch(split)]
            joined = batches[0] if len(batches) == 1 else _concat(batches)
            keep = None if full or self.hidden_only else head_positions(self.model, joined)
            head = {} if keep is None else {"logits_to_keep": keep}
            picked = None if keep is None else response_rows(joined, keep)
            logits = None
            with (
                self._autocast(),
                capture_layers(self.model, self.hidden_layers, self.hidden_only) as hidden,
                head_on_rows(self.model, picked),
            ):
                try:
                    logits = self.model(
                        input_ids=joined.input_ids, attention_mask=joined.attention_mask, **head
                    )
                    logits = logits.logits
                except StopForward:
                    pass  # hidden_only: the captured layers are all the terms read
            self._split_outputs(group, batches, logits, hidden, keep)
        return self._outputs[split]

    def _split_outputs(self, group, batches, logits, hidden, keep) -> None:
        """One Outputs per batch of a joined forward. With `keep`, logits are [1, N, V] response
        rows, batch after batch: split (whose backward is a cat, not zeros plus a copy)."""
        sizes = [int((b.labels[:, 1:] != IGNORE).sum()) for b in batches]
        rows_of = iter(logits[0].split(sizes) if logits is not None and keep is not None else [])
        start = 0
        for name, batch in zip(group, batches):
            # Right padding: a row's logits up to its own width are those of a separate pass.
            rows, width = slice(start, start + batch.input_ids.shape[0]), batch.input_ids.shape[1]
            parts = {layer: h[rows, :width] for layer, h in hidden.items()}
            if logits is None:
                self._outputs[name] = Outputs(None, batch, parts)
            elif keep is None:
                self._outputs[name] = Outputs(logits[rows, :width], batch, parts)
            else:
                inside = keep[keep < width - 1]
                self._outputs[name] = Outputs(next(rows_of), batch, parts, positions=inside)
            start = rows.stop

    def reference(self, split: str) -> Outputs:
        """The original (pre-unlearning) model on `split`, without gradients."""
        if self._reference_forward is None:
            raise RuntimeError("this objective has no reference model; declare needs_reference")
        if split not in self._reference:
            batch = self.batch(split)
            with torch.no_grad(), self._autocast():
                if isinstance(self._reference_forward, ReferenceProvider):
                    # hidden_only is passed only when set, so providers written before it work
                    extra = {"hidden_only": True} if self.hidden_only else {}
                    self._reference[split] = self._reference_forward.outputs(
                        batch, self.hidden_layers, full_logits=self.needs_full_logits(split), **extra
                    )
                else:  # a plain callable returning logits
                    self._reference[split] = Outputs(self._reference_forward(batch).detach(), batch)
        return self._reference[split]

    @property
    def tokens(self) -> int:
        """Real tokens in the batches this micro-step built (each counted once)."""
        return sum(b.num_tokens for b in self._batches.values())

    @property
    def computed(self) -> dict[str, Outputs]:
        return self._outputs


def _right_padded(batch: Batch) -> bool:
    mask = batch.attention_mask.bool()
    lengths = mask.sum(dim=1, keepdim=True)
    return bool((mask == (torch.arange(mask.shape[1], device=mask.device) < lengths)).all())


def _concat(batches: list[Batch]) -> Batch:
    """Right-pad every batch to the widest and stack them (padding: id 0, mask 0, label IGNORE)."""
    width = max(b.input_ids.shape[1] for b in batches)

    def pad(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return Batch(
        torch.cat([pad(b.input_ids, 0) for b in batches]),
        torch.cat([pad(b.attention_mask, 0) for b in batches]),
        torch.cat([pad(b.labels, IGNORE) for b in batches]),
    )
