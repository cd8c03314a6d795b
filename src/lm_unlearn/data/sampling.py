"""Which examples each micro-step sees: a pure function of (seed, micro-step, rank).

Because nothing depends on iterator state, a resumed run sees exactly the batches the
uninterrupted run would have seen, and N processes with batch b see the same global batch
as one process with batch N*b, while each rank draws different samples.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lm_unlearn.data.records import Record
from lm_unlearn.data.templates import PromptFormat
from lm_unlearn.data.tokenize import Batch, Example, collate, encode
from lm_unlearn.errors import DataError

_STREAM = {"forget": 1, "retain": 2, "mismatch": 3, "refusal": 4}
REFUSALS = Path(__file__).parent / "builtin" / "refusals.txt"


def read_refusals(path: str | Path | None = None) -> list[str]:
    """Refusal answers, one per line (blank lines skipped); the built-in list by default."""
    path = Path(path) if path is not None else REFUSALS
    if not path.is_file():
        raise DataError(f"refusal list not found: {path} (a text file, one refusal per line)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: no refusals in the file (write one per line)")
    return lines


def _generator(seed: int, stream: str, index: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + _STREAM[stream] * 10_007 + index) % (2**63))
    return g


def cycled_indices(n: int, start: int, count: int, seed: int, stream: str) -> list[int]:
    """Positions [start, start+count) of an endless stream of per-epoch shuffles of range(n).

    Every example is seen once per epoch; the stream is cycled, not truncated.
    """
    out = []
    for position in range(start, start + count):
        epoch, offset = divmod(position, n)
        perm = torch.randperm(n, generator=_generator(seed, stream, epoch))
        out.append(int(perm[offset]))
    return out


class StepData:
    """Builds the named batches ("forget", "retain", "mismatch", "refusal", "alternate") of one
    micro-step."""

    def __init__(
        self,
        forget: list[Example],
        forget_records: list[Record],
        retain: list[Example] | None,
        retain_records: list[Record] | None,
        fmt: PromptFormat,
        batch_size: int,
        retain_batch_size: int,
        max_length: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        refusals: list[str] | None = None,
        mismatch_k: int = 1,
        alternates: list[list[str]] | None = None,
    ):
        self.forget, self.forget_records = forget, forget_records
        self.retain, self.retain_records = retain, retain_records
        self.fmt = fmt
        self.batch_size, self.retain_batch_size = batch_size, retain_batch_size
        self.max_length = max_length
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.pad_id = fmt.tokenizer.pad_token_id
        self.refusals = refusals if refusals is not None else read_refusals()
        self.mismatch_k = mismatch_k  # random normal answers per forget prompt (mismatch.k)
        self.alternates = alternates  # per forget record, the original model's answers (altpo)

    def _rank_slice(self, n: int, micro_step: int, batch: int, stream: str) -> list[int]:
        global_batch = batch * self.world_size
        indices = cycled_indices(n, micro_step * global_batch, global_batch, self.seed, stream)
        return indices[self.rank * batch : (self.rank + 1) * batch]

    def forget_indices(self, micro_step: int) -> list[int]:
        return self._rank_slice(len(self.forget), micro_step, self.batch_size, "forget")

    def batch(self, split: str, micro_step: int) -> Batch:
        if split == "forget":
            return collate([self.forget[i] for i in self.forget_indices(micro_step)], self.pad_id)
        if split == "refusal":
            return collate(self.refusal_examples(micro_step), self.pad_id)
        if split == "alternate":
            return collate(self.alternate_examples(micro_step), self.pad_id)
        if self.retain is None:
            raise ValueError(f"the '{split}' batch needs retain (normal) data: set data.retain")
        if split == "retain":
            idx = self._rank_slice(len(self.retain), micro_step, self.retain_batch_size, "retain")
            return collate([self.retain[i] for i in idx], self.pad_id)
        if split == "mismatch":
            return collate(self.mismatch_examples(micro_step), self.pad_id)
        raise ValueError(f"unknown batch '{split}' (known: forget, retain, mismatch, refusal, alternate)")

    def mismatch_examples(self, micro_step: int) -> list[Example]:
        """Each forget prompt paired with its own `mismatch_k` randomly drawn retain responses,
        prompt-major: [x_0 y_0,0 .. x_0 y_0,k-1, x_1 y_1,0, ...]. Drawn with replacement,
        independently per prompt; with k = 1 the draws are those of a single answer per prompt."""
        k = self.mismatch_k
        g = _generator(self.seed, "mismatch", micro_step)
        global_draws = torch.randint(
            len(self.retain_records), (self.batch_size * self.world_size * k,), generator=g
        ).tolist()
        draws = global_draws[self.rank * self.batch_size * k : (self.rank + 1) * self.batch_size * k]
        examples = []
        for row, forget_index in enumerate(self.forget_indices(micro_step)):
            prompt = self.forget_records[forget_index]
            for retain_index in draws[row * k : (row + 1) * k]:
                answer = self.retain_records[retain_index]
                record = Record(prompt.prompt, answer.response, f"mismatch({prompt.source})")
                examples.append(encode(record, self.fmt, self.max_length, "truncate"))
        return examples

    def refusal_examples(self, micro_step: int) -> list[Example]:
        """Each forget prompt (same order as the forget batch) with its own random refusal."""
        g = _generator(self.seed, "refusal", micro_step)
        global_draws = torch.randint(len(self.refusals), (self.batch_size * self.world_size,), generator=g)
        draws = global_draws.tolist()[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        examples = []
        for forget_index, refusal_index in zip(self.forget_indices(micro_step), draws):
            prompt = self.forget_records[forget_index]
            record = Record(prompt.prompt, self.refusals[refusal_index], f"refusal({prompt.source})")
            examples.append(encode(record, self.fmt, self.max_length, "truncate"))
        return examples

    def alternate_examples(self, micro_step: int) -> list[Example]:
        """Each forget prompt (same order as the forget batch) with all its alternate answers,
        prompt-major, as the altpo term reads them."""
        if self.alternates is None:
            raise ValueError("the 'alternate' batch needs alternate answers (the altpo term makes them)")
        examples = []
        for forget_index in self.forget_indices(micro_step):
            prompt = self.forget_records[forget_index]
            for answer in self.alternates[forget_index]:
                record = Record(prompt.prompt, answer, f"alternate({prompt.source})")
                examples.append(encode(record, self.fmt, self.max_length, "truncate"))
        return examples
