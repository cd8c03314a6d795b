"""Model outputs on a batch, with the response-masked quantities every loss term shares.

Masking is decided here, once: a term never sees prompt or padding tokens unless it asks for
the raw logits. All log-probabilities are computed in fp32, whatever the autocast dtype.
"""

from __future__ import annotations

from functools import cached_property

import torch
import torch.nn.functional as F

from lm_unlearn.data.tokenize import IGNORE, Batch


class Outputs:
    def __init__(
        self,
        logits: torch.Tensor | None,
        batch: Batch,
        hidden_states: dict[int, torch.Tensor] | None = None,
        extra: dict[str, torch.Tensor] | None = None,
        positions: torch.Tensor | None = None,
    ):
        # [B, T, V]: logits[:, t] predicts token t + 1. With `positions` (sorted, covering every
        # response position), only those were computed: [B, K, V], column k predicts token
        # positions[k] + 1 (StepContext asks the model for them with `logits_to_keep`).
        # [N, V] (with positions): the head ran on the response rows only (head.head_on_rows),
        # in the order of response_targets; see rows_only.
        self._logits = logits
        self.positions = positions
        self.batch = batch
        self.hidden_states = hidden_states or {}  # decoder layer index -> [B, T, H] output
        self.extra = extra or {}  # method-specific values, e.g. WHP's reinforced-model logits

    @classmethod
    def precomputed(
        cls,
        batch: Batch,
        token_logprob: torch.Tensor | None,
        logits: torch.Tensor | None = None,
        hidden_states: dict[int, torch.Tensor] | None = None,
        extra: dict[str, torch.Tensor] | None = None,
    ) -> Outputs:
        """Outputs rebuilt from cached values (objectives/reference.py); logits may be absent."""
        out = cls(logits, batch, hidden_states, extra)
        if token_logprob is not None:
            out.__dict__["token_logprob"] = token_logprob  # fills the cached_property
        return out

    @property
    def rows_only(self) -> bool:
        """The stored logits are the [N, V] response rows (head.head_on_rows), not [B, K, V]."""
        return self._logits is not None and self._logits.dim() == 2

    @property
    def has_logits(self) -> bool:
        """False when the forward stopped after the captured layers (hidden-only objectives)."""
        return self._logits is not None or "token_logprob" in self.__dict__

    @property
    def logits(self) -> torch.Tensor | None:
        if self.positions is not None:
            raise RuntimeError(
                "only response-position logits were computed; a term that reads logits must be "
                "registered with full_logits=True"
            )
        return self._logits

    def layer(self, index: int) -> torch.Tensor:
        if index not in self.hidden_states:
            raise RuntimeError(f"layer {index} activations were not captured; the term must declare it")
        return self.hidden_states[index]

    @cached_property
    def response_mask(self) -> torch.Tensor:
        """[B, T-1] bool: positions whose next token is a response token."""
        return self.batch.labels[:, 1:] != IGNORE

    @cached_property
    def token_logprob(self) -> torch.Tensor:
        """[B, T-1] fp32 log p(y_t | y_<t) of each response token, 0 elsewhere."""
        targets, mask = self.batch.labels[:, 1:], self.response_mask
        # Only response positions (a minority in QA batches: prompts and padding are the rest) are
        # upcast to fp32 and kept by the fused cross_entropy for backward (docs/performance.md).
        nll = F.cross_entropy(self._picked_response_logits().float(), targets[mask], reduction="none")
        return torch.zeros(targets.shape, dtype=nll.dtype, device=nll.device).masked_scatter(mask, -nll)

    @cached_property
    def response_logits(self) -> torch.Tensor:
        """[N, V] logits predicting the N response tokens (row-major over [B, T-1]), as stored;
        `response_targets` holds the tokens. Read whole-vocabulary terms (ce_u, pdu) from here:
        it works without full_logits, since the head ran on these positions anyway."""
        return self._picked_response_logits()

    def _picked_response_logits(self) -> torch.Tensor:
        """The response rows of the stored logits (not cached: token_logprob keeps only its fp32
        copy). Sorted positions keep the row-major order of response_mask."""
        if self.rows_only:
            return self._logits
        if self.positions is None:
            return _picked_rows(self._logits, _up_to_last(self.response_mask))
        return _picked_rows(self._logits, self.response_mask[:, self.positions])

    @cached_property
    def response_targets(self) -> torch.Tensor:
        """[N] the response tokens, in the order of `response_logits`."""
        return self.batch.labels[:, 1:][self.response_mask]

    @cached_property
    def response_rows(self) -> torch.Tensor:
        """[N] the example each response token belongs to (for per-example means)."""
        return self.response_mask.nonzero()[:, 0]

    def per_example_mean(self, values: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over examples of the mean over each example's response tokens, of [N] values.

        keep: [N] bool, the tokens that count; examples with none kept are left out of the mean
        (a batch with none at all gives 0, not NaN: a micro-batch of one short answer).
        """
        rows = self.response_rows if keep is None else self.response_rows[keep]
        values = values if keep is None else values[keep]
        n = self.response_mask.shape[0]
        sums = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, rows, values)
        counts = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(
            0, rows, torch.ones_like(values)
        )
        present = counts > 0
        return (sums[present] / counts[present]).sum() / present.sum().clamp(min=1)

    @cached_property
    def response_length(self) -> torch.Tensor:
        """[B] number of response tokens per example (>= 1, guaranteed by tokenisation)."""
        return self.response_mask.sum(dim=1).clamp(min=1)

    @cached_property
    def seq_logprob(self) -> torch.Tensor:
        """[B] log pi(y|x): response-token log-probs summed per example."""
        return self.token_logprob.sum(dim=1)

    @cached_property
    def mean_nll(self) -> torch.Tensor:
        """[B] per-example mean token NLL over the response."""
        return -self.seq_logprob / self.response_length


def _picked_rows(logits: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
    """logits[picked] ([N, V], row-major). On a contiguous tensor by index_select: the same
    values, and a backward that adds into zeros instead of boolean indexing's accumulating
    index_put, which sorts its indices (on CPU 22 against 36 ms for a [8, 26, 49152] batch,
    forward and backward). A strided view keeps boolean indexing, which needs no copy of it."""
    if not logits.is_contiguous():
        return logits[picked]
    return logits.flatten(0, 1).index_select(0, picked.flatten().nonzero().squeeze(1))


def _up_to_last(mask: torch.Tensor) -> torch.Tensor:
    """[B, T-1] mask over logits[:, :-1] as a [B, T] mask over logits (last column unpicked)."""
    return torch.cat([mask, mask.new_zeros(mask.shape[0], 1)], dim=1)
