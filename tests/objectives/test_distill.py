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


class Refuses(torch.nn.Module):
    """A model that must not run: the original when no term reads its outputs."""

    def forward(self, **_):
        raise AssertionError("the original ran although no term reads it")


def test_distill_alone_never_runs_or_copies_the_original(tiny_model_dir, tmp_path):
    """distill reads only its teacher's logits (reads_original=False): a full-mode run makes no
    frozen copy of the original, the live reference runs only the teacher, and a precomputed
    reference gives the same losses."""
    from support.tiny import tiny_run_config

    from lm_unlearn.engine import train
    from lm_unlearn.objectives.reference import LiveReference
    from lm_unlearn.training_setup import prepare_model

    objective = build_objective(None, {"distill": {"teacher": str(tiny_model_dir)}})
    assert objective.needs_reference and not objective.reads_original and objective.reference_logits == ()
    assert build_objective("npo", None).reads_original
    teacher = FixedModel(ROW)
    batch = batch_of([[IGNORE, 1, 2]], [3])
    out = LiveReference(Refuses(), {"teacher_logits": teacher}, original=False).outputs(batch, ())
    assert not out.has_logits and out.extra["teacher_logits"].shape == (1, 3, 4)

    losses = {}
    for mode in ("live", "precompute"):
        settings = {"objective": f"{{distill: {{teacher: {tiny_model_dir}}}}}", "train.reference": mode}
        settings |= {"train.max_steps": 2, "train.eval_every": 0}
        cfg = tiny_run_config(tmp_path / mode, tiny_model_dir, **settings)
        if mode == "live":
            model = torch.nn.Linear(2, 2)
            assert prepare_model(cfg, objective, model, "cpu", "fp32")[1] is None  # no frozen copy
        result = train(cfg, tmp_path / mode / "run")
        losses[mode] = [row["distill"] for row in result.history]
    assert losses["live"] == pytest.approx(losses["precompute"], rel=1e-5)
    assert losses["live"][0] == pytest.approx(0.0, abs=1e-6)  # the student starts as the teacher
