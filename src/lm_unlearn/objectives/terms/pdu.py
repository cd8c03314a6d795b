import torch
import torch.distributed as dist

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term


def logit_margin_flattening(logits: torch.Tensor) -> torch.Tensor:
    """[N] (max_v z_v - mean_v z_v)^2 per position, in fp32: 0 exactly when all logits are equal."""
    logits = logits.float()
    return (logits.max(dim=-1).values - logits.mean(dim=-1)).square()


def _mean_over_processes(value: torch.Tensor) -> float:
    # Every process must hold the same dual variable, so the constraint gap is averaged first.
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value = value / dist.get_world_size()
    return float(value)


@term(
    "pdu",
    "min (max z - mean z)^2 on forget s.t. retain NLL <= eps, by primal-dual (Entesari et al. 2025)",
    splits=("forget", "retain"),
)
def pdu(
    ctx: StepContext,
    eps: float | None = None,
    tolerance: float = 0.1,
    dual_init: float = 1.0,
    dual_lr: float = 1.0,
    dual_warmup: int = 0,
) -> torch.Tensor:
    """Primal-dual unlearning (Entesari, Hatami, Khaziev, Ramakrishna & Fazlyab, "Constrained
    Entropic Unlearning: A Primal-Dual Framework for Large Language Models", 2025, arXiv 2506.05314).

    min L_fgt  s.t.  L_rtn <= eps, through the Lagrangian L = L_fgt + lambda * (L_rtn - eps):
      L_fgt = (1/B) * sum_i (1/|y_i|) * sum_t (max_v z_i,t,v - mean_v z_i,t,v)^2,
      the logit-margin flattening loss on the logits z predicting forget-response tokens (0 when
      the output is uniform; softmax-free, its gradient does not vanish near uniform);
      L_rtn = retain NLL (per-example mean token NLL);
      after each micro-step, dual ascent: lambda <- max(0, lambda + dual_lr * (L_rtn - eps)).
    eps None: (1 + tolerance) * L_rtn of the first retain batch at the first step (the original
    model), the paper's suggested eps = (1 + alpha) L_rtn(pi_ref) estimated on one batch.
    lambda starts at dual_init and stays fixed for the first `dual_warmup` micro-steps.
    lambda, eps and the update count live in ctx.state, so checkpoints keep them and a resumed run
    continues exactly. As in open-unlearning's PDU (under HF gradient accumulation), lambda moves
    once per micro-batch; its L_fgt averages over every position, prompt and padding included,
    where this one averages over response tokens.
    """
    forget, retain = ctx.outputs("forget"), ctx.outputs("retain")
    forget_loss = forget.per_example_mean(logit_margin_flattening(forget.response_logits))
    retain_loss = retain.mean_nll.mean()
    state = ctx.state
    if "eps" not in state:
        start = _mean_over_processes(retain_loss.detach())
        state.update(eps=eps if eps is not None else (1.0 + tolerance) * start, dual=dual_init, updates=0)
    gap = retain_loss - state["eps"]
    loss = forget_loss + state["dual"] * gap
    if state["updates"] >= dual_warmup:
        state["dual"] = max(0.0, state["dual"] + dual_lr * _mean_over_processes(gap.detach()))
    state["updates"] += 1
    return loss
