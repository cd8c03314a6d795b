"""The distill term (UNDO's distillation on outputs) by hand, on fixed logits."""

import pytest
import torch
from support.terms import LOG, ROW, FixedModel, batch_of

from lm_unlearn.data.tokenize import IGNORE
from lm_unlearn.objectives import StepContext, build_objective
from lm_unlearn.objectives.context import ReferenceProvider
from lm_unlearn.objectives.outputs import Outputs


class TeacherByWidth(ReferenceProvider):
    """Reference outputs whose teacher logits depend on the batch width (one per split here)."""

    def __init__(self, teachers: dict[int, torch.Tensor]):
        self.teachers = teachers

    def outputs(self, batch, layers, full_logits=True, hidden_only=False):
        shape = (*batch.input_ids.shape, 4)
        teacher = self.teachers[batch.input_ids.shape[1]].expand(shape)
        return Outputs(torch.zeros(shape), batch, extra={"teacher_logits": teacher})


def test_distill_term_by_hand():
    forget = batch_of([[IGNORE, 1, 2]], [3])  # width 3: the teacher is uniform
    retain = batch_of([[IGNORE, 1], [IGNORE, 3]], [2, 1])  # width 2: the teacher is the model
    provider = TeacherByWidth({3: torch.zeros(4), 2: ROW})
    objective = build_objective(None, {"distill": {"teacher": "unused"}})
    batches = {"forget": forget, "retain": retain}
    _, values = objective(StepContext(FixedModel(ROW), lambda s: batches[s], provider))
    # model p = [1/8, 1/8, 2/8, 4/8]; KL(uniform || p) = (1/4) * (LOG 2 + LOG 2 + 0 - LOG 2) per position
    kl_forget, kl_retain = LOG(2) / 4, 0.0
    assert values["distill"].item() == pytest.approx((kl_forget + kl_retain) / 2, rel=1e-5)


def test_distill_term_needs_a_teacher():
    from lm_unlearn.errors import ConfigError
    from lm_unlearn.objectives.context import RunContext

    objective = build_objective(None, {"distill": 1.0})
    with pytest.raises(ConfigError, match="objective.distill.teacher"):
        objective.before_training(RunContext(torch.nn.Linear(1, 1)))
