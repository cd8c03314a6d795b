"""Sharpness-aware unlearning (Fan, Jia, Zhang, Ramakrishna, Hong & Liu, "Towards LLM Unlearning
Resilient to Relearning Attacks: A Sharpness-Aware Minimization Perspective and Beyond", ICML
2025, arXiv 2502.05374), on top of any recipe with `train.sam_rho`.

Relearning is an adversary moving the weights to undo the forgetting, so the forget loss is
minimised against the worst nearby weights:
    min_w  max_{||d|| <= rho} L_f(w + d) + L_r(w),
with the inner maximum to first order d = eps = rho * g / ||g||, g = grad L_f(w). The step uses
    grad L_f(w + eps) + grad L_r(w)
(SAM's approximation: eps is treated as a constant), taken at w + eps and applied at w.
L_f is the forget terms (`forget_terms`), L_r the terms that read only retain data.

As in the authors' code (OPTML-Group/Unlearn-Smooth, sam_rho 0.01), eps comes from the forget
loss alone and the retain gradient is taken at w. Their eps is per micro-batch; here it comes
from the step's whole forget gradient (summed over grad_accum micro-batches, averaged over
processes), so batch 8 x accumulation 1 and batch 1 x accumulation 8 take the same step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lm_unlearn.errors import ConfigError

FORGET_SPLITS = frozenset({"forget", "mismatch", "refusal"})


def forget_terms(objective) -> tuple[str, ...]:
    """The terms SAM perturbs: those reading a forget-side batch (forget, mismatch, refusal;
    pdu and rmu also read retain data and are perturbed whole). Terms reading only retain data
    (retain_nll, kl, gru) stay at w."""
    names = tuple(w.term.name for w in objective.terms if FORGET_SPLITS & set(w.term.splits))
    if not names:
        raise ConfigError(
            f"train.sam_rho perturbs the forget terms, but the objective ({objective.describe()}) has "
            "none; add one (e.g. npo) or set train.sam_rho=0"
        )
    return names


def perturbation(grads: list[torch.Tensor | None], rho: float) -> list[torch.Tensor | None]:
    """eps = rho * g / ||g|| (||g|| over all parameters); zero where ||g|| = 0."""
    norm = sum(float(g.double().square().sum()) for g in grads if g is not None) ** 0.5
    if norm == 0.0:
        return [None for _ in grads]
    return [None if g is None else g * (rho / norm) for g in grads]


@contextmanager
def perturbed(
    params: list[torch.nn.Parameter], grads: list[torch.Tensor | None], rho: float
) -> Iterator[None]:
    """Inside the block the parameters are w + rho * g / ||g||; afterwards exactly w again
    (restored from a copy: w + eps - eps can differ from w in its last bit)."""
    eps = perturbation(grads, rho)
    saved = [p.detach().clone() if e is not None else None for p, e in zip(params, eps)]
    with torch.no_grad():
        for p, e in zip(params, eps):
            if e is not None:
                p.add_(e.to(p.dtype))
    del eps
    try:
        yield
    finally:
        with torch.no_grad():
            for p, w in zip(params, saved):
                if w is not None:
                    p.copy_(w)
