"""Distillation on outputs: the model learns a teacher's next-token distributions (UNDO's phase 3)."""

import torch

from lm_unlearn.errors import ConfigError
from lm_unlearn.models import load_model
from lm_unlearn.objectives.context import RunContext, StepContext
from lm_unlearn.objectives.registry import term
from lm_unlearn.objectives.terms.kl import kl_divergence


def load_teacher(run: RunContext, teacher: str = "", **_) -> dict[str, torch.nn.Module]:
    """before_training: the frozen teacher (fp32, eval mode), whose logits the reference gives as
    `extra["teacher_logits"]` beside the source model's."""
    if not teacher:
        raise ConfigError(
            "objective.distill.teacher is empty: set it to the teacher's model directory "
            "(method=undo sets it to its unlearn phase's model)"
        )
    model = load_model(teacher).model
    model.to(device=run.device, dtype=torch.float32)
    return {"teacher_logits": model.eval().requires_grad_(False)}


@term(
    "distill",
    "KL(teacher || current) on the full next-token logits of forget and retain text (UNDO, Lee et al. 2025)",
    splits=("forget", "retain"),
    needs_reference=True,
    full_logits=True,
    before_training=load_teacher,
    reads_original=False,
)
def distill(ctx: StepContext, teacher: str = "") -> torch.Tensor:
    """Forward-KL distillation on outputs (Lee et al., *Distillation Robustifies Unlearning*, 2025,
    arXiv 2506.06278; the D of UNDO).

    L = (1/2) * sum_{s in {forget, retain}} (1/B) sum_i (1/|m_i|) sum_{t: m_i,t = 1}
        KL(p_teacher(. | x_i,<=t) || p(. | x_i,<=t)),
    over every real (non-padding) position m of each example, prompt included, with the teacher's
    logits computed on the same batch. Both splits are distilled: on retain text the student
    learns the teacher's knowledge, on forget text its unlearned (suppressed) outputs.
    `teacher`: the teacher's model directory (method=undo sets it).
    """
    values = []
    for split in ("forget", "retain"):
        current, reference = ctx.outputs(split), ctx.reference(split)
        teacher_logits = reference.extra["teacher_logits"]
        values.append(kl_divergence(teacher_logits, current.logits, current.batch.attention_mask))
    return (values[0] + values[1]) / 2
