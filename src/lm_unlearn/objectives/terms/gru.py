import torch

from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.registry import term

Grads = list[torch.Tensor | None]  # one entry per trainable parameter; None: no gradient


def _dot(a: Grads, b: Grads) -> float:
    """<a, b> over all parameters, accumulated in float64 (GRU's code projects in float64)."""
    return sum(
        float((x * y).sum(dtype=torch.float64)) for x, y in zip(a, b) if x is not None and y is not None
    )


def gru_rectify(update: Grads, own: Grads, state: dict, ema: float = 0.8, retain_weight: float = 0.0) -> dict:
    """Project `update` (in place) off the running retain direction where the two conflict.

    r = ema * own + (1 - ema) * r_prev (r_prev = 0 at the first step), kept in state["retain_avg"];
    if <update, r> < 0: update <- update - (<update, r> / <r, r>) * r; then update += retain_weight * own.
    Returns the cosine of update and r before the projection (logged as gru_cos).
    """
    previous = state.get("retain_avg") or []
    previous = previous + [None] * (len(own) - len(previous))
    avg: Grads = []
    for g, prev in zip(own, previous):
        if g is None and prev is None:
            avg.append(None)
            continue
        now = ema * g.detach() if g is not None else None
        old = (1.0 - ema) * prev.to(g.device if g is not None else prev.device) if prev is not None else None
        avg.append(now + old if now is not None and old is not None else now if now is not None else old)
    state["retain_avg"] = avg
    dot, rr, uu = _dot(update, avg), _dot(avg, avg), _dot(update, update)
    cos = dot / (uu * rr) ** 0.5 if uu > 0 and rr > 0 else 0.0
    if dot < 0 and rr > 0:
        scale = dot / rr
        for i, r in enumerate(avg):
            if r is not None:
                update[i] = -scale * r if update[i] is None else update[i] - (scale * r).to(update[i].dtype)
    if retain_weight:
        for i, g in enumerate(own):
            if g is not None:
                update[i] = retain_weight * g if update[i] is None else update[i] + retain_weight * g
    return {"cos": cos}


@term(
    "gru",
    "retain NLL whose (averaged) gradient only rectifies the others': project it off where they "
    "conflict (Wang et al. 2025)",
    splits=("retain",),
    rectify=gru_rectify,
)
def gru(ctx: StepContext, ema: float = 0.8, retain_weight: float = 0.0) -> torch.Tensor:
    """Gradient Rectified Unlearning (Wang, Wang, Liu, Huang, Du, Du & Han, "GRU: Mitigating the
    Trade-off between Unlearning and Retention for LLMs", ICML 2025, arXiv 2503.09117).

    The value is the retain NLL L_r (per-example mean token NLL, as retain_nll); its gradient is
    not trained on but kept apart. With g_u the gradient of the objective's other terms (the
    unlearning objective, summed over the step's micro-batches) and g_r that of L_r:
      r_t = ema * g_r + (1 - ema) * r_(t-1),  r_0 = 0   (a running average of the retain gradient)
      if <g_u, r_t> < 0:  g_u <- g_u - (<g_u, r_t> / ||r_t||^2) * r_t
      g <- g_u + retain_weight * g_r
    so the update no longer points against the retain direction (first order), moving g_u as
    little as possible: the paper's closed-form projection. As in the authors' code
    (tmlr-group/GRU, `moving_avg` 0.8), r averages the retain gradient over steps, the projection
    happens once per optimizer step on the accumulated gradients, and `retain_weight` is their
    "+ce" variants' retain coefficient (0 in their main runs). The term's weight is not used: the
    projection does not depend on the scale of r. r is saved in checkpoints, so a resumed run
    continues exactly. The projection runs before gradient clipping.
    """
    return ctx.outputs("retain").mean_nll.mean()
