from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


@term(
    "altpo",
    "DPO preferring the original model's own alternate answers over the forget answer (Mekala et al. 2024)",
    splits=("forget", "alternate"),
    needs_reference=True,
    generated_answers=lambda k=5, temperature=1.0, max_new_tokens=200, seed=0, **_: {
        "k": k,
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
    },
)
def altpo(
    ctx: StepContext,
    beta: float = 0.1,
    k: Annotated[int, Field(ge=1)] = 5,
    temperature: Annotated[float, Field(ge=0)] = 1.0,
    max_new_tokens: Annotated[int, Field(ge=1)] = 200,
    seed: int = 0,
) -> torch.Tensor:
    """Alternate Preference Optimization (Mekala, Dorna, Dubey, Lalwani, Koleczek, Rungta, Hasan &
    Lobo, "Alternate Preference Optimization for Unlearning Factual Knowledge in Large Language
    Models", COLING 2025, arXiv 2409.13474), its forget term:

    L = (1/B) * sum_i (1/k) * sum_j -(2/beta) * log sigmoid(beta * [(log pi(a_ij|x_i) - log pi_ref(a_ij|x_i))
                                                               - (log pi(y_i|x_i) - log pi_ref(y_i|x_i))]),
    sequence log-probs summed over response tokens; y_i the forget answer, a_i1..a_ik alternate
    answers the original model gave when asked for another version of (x_i, y_i) with different
    plausible facts (objectives/alternates.py: k samples at `temperature`, at most
    `max_new_tokens` tokens, seeded by `seed` and the record; generated once before training and
    cached in RUN/alternates.jsonl). The "alternate" batch holds each prompt's k answers in a row.
    As in the authors' code (`subdpo`: DPO of alternate over forget, scaled by 2/beta, 5 alternates
    per question at temperature 1, each pair weighted alike) and open-unlearning's AltPO; the
    `altpo` recipe adds the retain NLL (their retain_wt = 1).
    """
    alternate, alternate_ref = ctx.outputs("alternate"), ctx.reference("alternate")
    forget, forget_ref = ctx.outputs("forget"), ctx.reference("forget")
    chosen = (alternate.seq_logprob - alternate_ref.seq_logprob).view(-1, k)
    rejected = (forget.seq_logprob - forget_ref.seq_logprob).unsqueeze(1)
    return (-(2.0 / beta) * F.logsigmoid(beta * (chosen - rejected))).mean(dim=1).mean()
