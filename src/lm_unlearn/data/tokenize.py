"""Tokenisation with response-only labels, and padding into batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from lm_unlearn.data.records import Record
from lm_unlearn.data.templates import PromptFormat
from lm_unlearn.errors import DataError

log = logging.getLogger(__name__)

IGNORE = -100  # label value that no loss sees (the convention of torch and transformers)


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens; the token id on response tokens
    source: str


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T], 1 on real tokens
    labels: torch.Tensor  # [B, T], IGNORE on prompt and padding

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels)))

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def encode(record: Record, fmt: PromptFormat, max_length: int, overlong: str = "truncate") -> Example:
    """Tokenise one record; the prompt/response boundary comes from character offsets.

    A token is a response token when its character span ends after the boundary, so a token
    that straddles it (e.g. " Paris" after "Answer:") counts as response. The prompt is never
    re-tokenised on its own, which would give different tokens at the seam.
    """
    tokenizer = fmt.tokenizer
    text, boundary = fmt.render(record.prompt, record.response)
    special = fmt.kind != "chat" or record.is_text  # chat templates write their own specials
    enc = tokenizer(
        text, add_special_tokens=special, return_offsets_mapping=True, return_attention_mask=False
    )
    ids = list(enc["input_ids"])
    labels = [tok if end > boundary else IGNORE for tok, (_, end) in zip(ids, enc["offset_mapping"])]
    if fmt.kind == "plain" and not record.is_text and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    if len(ids) > max_length:
        if overlong == "error":
            raise DataError(
                f"{record.source}: {len(ids)} tokens exceed data.max_length={max_length} "
                "(raise max_length, or set data.overlong=truncate)"
            )
        log.warning("%s: %d tokens cut to %d", record.source, len(ids), max_length)
        ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels[1:]):
        raise DataError(f"{record.source}: no response tokens remain within data.max_length={max_length}")
    return Example(input_ids=ids, labels=labels, source=record.source)


def encode_records(
    records: list[Record], fmt: PromptFormat, max_length: int, overlong: str = "truncate"
) -> list[Example]:
    return [encode(r, fmt, max_length, overlong) for r in records]


def collate(examples: list[Example], pad_id: int, padding_side: str = "right") -> Batch:
    """Pad to the longest example. The attention mask marks real tokens by position, never by
    comparing ids with pad_id (the pad id may equal EOS, which is a real token)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        span = slice(0, n) if padding_side == "right" else slice(width - n, width)
        ids[row, span] = torch.tensor(example.input_ids)
        mask[row, span] = 1
        labels[row, span] = torch.tensor(example.labels)
    return Batch(input_ids=ids, attention_mask=mask, labels=labels)
