"""Hand-made batches and fixed-logit models for term tests (vocabulary of 4)."""

import math
from types import SimpleNamespace

import torch

from lm_unlearn.data.tokenize import Batch
from lm_unlearn.objectives import StepContext

LOG = math.log
# These logits give probabilities [1/8, 1/8, 2/8, 4/8] at every position.
ROW = torch.tensor([LOG(1), LOG(1), LOG(2), LOG(4)])
P = [1 / 8, 1 / 8, 2 / 8, 4 / 8]


def batch_of(labels, lengths) -> Batch:
    labels = torch.tensor(labels)
    mask = torch.zeros_like(labels)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return Batch(input_ids=labels.clamp(min=0), attention_mask=mask, labels=labels)


class FixedModel(torch.nn.Module):
    """Returns the same logits row at every position, scaled by a trainable scalar (init 1)."""

    def __init__(self, row: torch.Tensor):
        super().__init__()
        self.row = row
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.scale * self.row.expand(*input_ids.shape, len(self.row)))


def context(batches, model=None, reference_row=None) -> StepContext:
    reference = None
    if reference_row is not None:
        reference = lambda b: reference_row.expand(*b.input_ids.shape, len(reference_row))  # noqa: E731
    return StepContext(model or FixedModel(ROW), lambda split: batches[split], reference_forward=reference)
