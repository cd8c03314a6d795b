import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term(
    "task_vector",
    "fine-tune on forget (NLL), then theta = theta_0 - alpha*(theta_ft - theta_0) (Ilharco et al. 2023)",
)
def task_vector(ctx: StepContext, alpha: float = 1.0) -> torch.Tensor:
    """Task arithmetic, negation (Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023).

    During the run: L = (1/B) sum_i (1/|y_i|) sum_t -log p(y_i,t | x_i, y_i,<t) on forget
    responses, i.e. plain fine-tuning, so the forget NLL in metrics.jsonl falls. After the last
    step the run replaces the weights by theta_0 - alpha * (theta_ft - theta_0)
    (methods/task_vector.py; in LoRA mode by scaling the adapters' B matrices by -alpha).
    Only this term's weight in the objective matters for the loss; alpha acts afterwards.
    """
    return ctx.outputs("forget").mean_nll.mean()
