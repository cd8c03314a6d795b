import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term(
    "sft", "NLL on the forget-role data: plain fine-tuning (used by prepare to teach a model)", teaches=True
)
def sft(ctx: StepContext) -> torch.Tensor:
    """Supervised fine-tuning on the set in data.forget (standard language-modelling loss).

    L_sft = (1/B) * sum_i (1/|y_i|) * sum_t -log p(y_i,t | x_i, y_i,<t) over response tokens
    (every token of a raw-text record). Not an unlearning loss: `unlearn prepare` uses it to
    teach a base model a scenario's facts first (the "target"), and the same facts without
    the forget part (the "retrain" model), as TOFU does before unlearning (Maini et al., 2024).
    Unlike `task_vector`, nothing is negated after training.
    """
    return ctx.outputs("forget").mean_nll.mean()
