"""One forward pass per data set: every likelihood-based metric is read from its result.

Sequences are tokenised exactly as in training (`encode`: the model's prompt format, labels
only on response tokens), so a forget-set NLL here is the NLL the objective pushed up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.data.tokenize import IGNORE
from lm_unlearn.evaluation.generation import autocast_for, progress
from lm_unlearn.evaluation.kv_cache import cache_argument
from lm_unlearn.evaluation.memorization import greedy_hits
from lm_unlearn.evaluation.shared_prefix import common_length, run_prefix, shareable
from lm_unlearn.head import accepts_logits_to_keep, head_on_rows, response_rows, scored_positions

STATS_ROWS = 64  # response tokens whose vocabulary-wide statistics run at once (~13 MB fp32 at V=49k)


@dataclass
class SequenceScores:
    """Per-example values over response tokens (raw-text records: the whole text)."""

    token_logprob: list[np.ndarray]  # log p(x_t | x_<t), fp32
    token_zscore: list[np.ndarray]  # (log p(x_t) - mu_t) / sigma_t, for Min-K%++
    kl: list[float] | None  # mean per-token KL(reference || model), when a reference was given
    tokens: int  # tokens processed (forward passes over padding excluded)
    # argmax_v p(v | x_<t) == x_t per token (memorization.py); empty from older caches
    token_greedy: list[np.ndarray] = field(default_factory=list)

    @property
    def mean_nll(self) -> np.ndarray:
        return np.array([-lp.mean() for lp in self.token_logprob])

    @property
    def sum_logprob(self) -> np.ndarray:
        return np.array([lp.sum() for lp in self.token_logprob])


def forward_logits(model, batch, positions: torch.Tensor, precision: str, prefix: int = 0) -> torch.Tensor:
    """Logits at `positions` ([B, K, V]): the LM head runs there only (`lm_unlearn.head`) where
    the model's forward takes `logits_to_keep`, else its full logits are sliced. prefix=P: the
    first P tokens, the same in every row, run once (`shared_prefix`); positions must be >= P."""
    keep = accepts_logits_to_keep(model)
    head = {"logits_to_keep": positions - prefix} if keep else {}
    with autocast_for(model, precision):
        inputs = {"input_ids": batch.input_ids[:, prefix:], "attention_mask": batch.attention_mask}
        if prefix:
            cache = run_prefix(model, batch.input_ids[:1, :prefix], len(batch.input_ids))
            inputs[cache_argument(model)] = cache
        logits = model(**inputs, **head).logits
    return logits if keep else logits[:, positions - prefix]


def response_logits(
    model, batch, precision: str, share_prefix: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [N, V] at the batch's N response tokens (row by row, in order) and their targets
    [N]: the LM head runs on those rows only (`lm_unlearn.head`), not on every (row, position)
    pair of the [B, K] positions some row scores. share_prefix:
    the rows' common opening (up to the first scored position) runs once (`shared_prefix`)."""
    positions = scored_positions(batch)
    opening = common_length(batch.input_ids, batch.attention_mask) if share_prefix else 0
    first = int(positions.min()) if len(positions) else 0
    prefix = shareable(model, len(batch.input_ids), min(opening, first))
    rows = response_rows(batch, positions)
    targets = batch.labels[:, 1:][:, positions].flatten()[rows]
    in_forward = accepts_logits_to_keep(model)  # else the head ran on all [B, K] pairs: cut here
    with head_on_rows(model, rows if in_forward else None):
        logits = forward_logits(model, batch, positions, precision, prefix)
    logits = logits.reshape(-1, logits.shape[-1])
    return (logits if in_forward else logits.index_select(0, rows)), targets


def token_stats(logits: torch.Tensor, targets: torch.Tensor, zscores: bool, ref_logits=None) -> dict:
    """score_records' values per response token from logits [n, V] (and the reference's), in
    fp32: "lp" log p(target), "hits" greedy hits, "z" Min-K%++ z-scores, "kl" KL(ref || model)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    stats = {"lp": token_lp, "hits": greedy_hits(logp, targets)}
    if zscores:
        probs = logp.exp()
        mu = (probs * logp).sum(-1)
        # Two-pass variance: E[x^2] - mu^2 cancels badly when p is near uniform.
        sigma = (probs * (logp - mu.unsqueeze(-1)).square()).sum(-1).clamp(min=1e-12).sqrt()
        stats["z"] = (token_lp - mu) / sigma
    if ref_logits is not None:
        ref_logp = torch.log_softmax(ref_logits.float(), dim=-1)
        stats["kl"] = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return stats


def chunked_token_stats(logits: torch.Tensor, targets: torch.Tensor, zscores: bool, ref_logits=None) -> dict:
    """`token_stats`, STATS_ROWS rows at a time: their fp32 [rows, V] temporaries stay in cache."""
    parts = []
    for i in range(0, max(len(targets), 1), STATS_ROWS):
        cut = slice(i, i + STATS_ROWS)
        ref = None if ref_logits is None else ref_logits[cut]
        parts.append(token_stats(logits[cut], targets[cut], zscores, ref))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.no_grad()
def score_records(
    model,
    fmt: PromptFormat,
    records: list[Record],
    *,
    max_length: int = 256,
    batch_size: int = 8,
    precision: str = "fp32",
    reference=None,
    zscores: bool = True,
    share_prefix: bool = True,
    desc: str | None = None,
) -> SequenceScores:
    """Token log-probs, Min-K%++ z-scores and (with `reference`) KL, from one pass per model.

    Min-K%++ (Zhang et al., 2024) normalises each token's log-prob by the mean and standard
    deviation of log p over the vocabulary under the same prefix:
        mu_t = sum_z p(z) log p(z),  sigma_t^2 = sum_z p(z) (log p(z) - mu_t)^2.
    KL(reference || model) = sum_z q(z) (log q(z) - log p(z)) per response position.
    zscores=False skips the vocabulary-wide statistics (token_zscore is then empty) when only
    log-probs are needed: they cost several passes over an [N, vocab] tensor.
    share_prefix: each batch's common opening (a chat template's system turn) runs once.
    `desc` labels a progress bar.
    """
    model.eval()
    device = next(model.parameters()).device
    examples = encode_records(records, fmt, max_length)
    pad = fmt.tokenizer.pad_token_id
    n = len(examples)
    logprobs: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * n
    z_rows: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * n
    kls: list[float] = [0.0] * n
    hits: list[np.ndarray] = [np.zeros(0, dtype=bool)] * n
    order = sorted(range(n), key=lambda i: len(examples[i].input_ids))  # batches of like length pad least
    tokens = 0
    bar = progress(n, desc)
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        batch = collate([examples[i] for i in rows], pad).to(device)
        tokens += batch.num_tokens
        # Only response tokens: the vocabulary-wide work below (log-softmax, z-scores, KL) scales
        # with them, and in QA batches most positions are prompt or padding.
        logits, targets = response_logits(model, batch, precision, share_prefix)
        ref_logits = (
            None if reference is None else response_logits(reference, batch, precision, share_prefix)[0]
        )
        split = chunked_token_stats(logits, targets, zscores, ref_logits)
        per_row = (batch.labels[:, 1:] != IGNORE).sum(1).tolist()
        parts = {k: v.split(per_row) for k, v in split.items()}
        for row, index in enumerate(rows):
            logprobs[index] = parts["lp"][row].cpu().numpy()
            hits[index] = parts["hits"][row].cpu().numpy()
            if zscores:
                z_rows[index] = parts["z"][row].cpu().numpy()
            if reference is not None:
                kls[index] = float(parts["kl"][row].mean())
        bar.update(len(rows))
    bar.close()
    return SequenceScores(logprobs, z_rows, kls if reference is not None else None, tokens, hits)
