"""The `sft` teaching term against a hand computation."""

import math
from types import SimpleNamespace

import pytest
import torch

from lm_unlearn.data.tokenize import IGNORE, Batch
from lm_unlearn.objectives import StepContext, build_objective

LOG = math.log


class UniformRows(torch.nn.Module):
    """Logits giving probabilities [1/8, 1/8, 2/8, 4/8] over a 4-token vocabulary everywhere."""

    def forward(self, input_ids, attention_mask):
        row = torch.tensor([LOG(1), LOG(1), LOG(2), LOG(4)])
        return SimpleNamespace(logits=row.expand(*input_ids.shape, 4).clone())


def test_sft_is_the_per_example_mean_nll_of_the_forget_role_set():
    # Example 0: response tokens 3 then 2 (p = 1/2, 1/4); example 1: one token 0 (p = 1/8), then padding.
    labels = torch.tensor([[IGNORE, 3, 2], [IGNORE, 0, IGNORE]])
    batch = Batch(
        input_ids=labels.clamp(min=0), attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]), labels=labels
    )
    ctx = StepContext(UniformRows(), lambda split: {"forget": batch}[split])
    loss, values = build_objective(None, {"sft": 1.0})(ctx)
    expected = ((LOG(2) + LOG(4)) / 2 + LOG(8)) / 2
    assert values["sft"].item() == pytest.approx(expected)
    assert loss.item() == pytest.approx(expected)
    assert loss.item() > 0  # descending it raises the data's probability (ga is its negation)
