"""Membership inference read from the passes: each attack's score per forget (member) and
held-out (non-member) example, its AUC per model, and MUSE's PrivLeak against the retain model."""

from __future__ import annotations

from typing import Any

from lm_unlearn.evaluation import mia
from lm_unlearn.evaluation.passes import Pass, Suite
from lm_unlearn.models import LoadedModel

ATTACKS = ("loss", "zlib", "min_k", "min_k40", "min_k_pp", "grad_norm", "ref")


def mia_scores(suite: Suite, p: Pass, reference: Pass | None) -> dict[str, dict[str, list[float]]]:
    """attack -> {"forget": scores, "heldout": scores}."""
    k = suite.cfg.min_k
    out: dict[str, dict[str, list[float]]] = {}
    for role in ("forget", "heldout"):
        s, texts = p.scores[role], [r.response for r in suite.data.sets[role]]
        per = {
            "loss": [mia.loss_score(lp) for lp in s.token_logprob],
            "zlib": [mia.zlib_score(lp, t) for lp, t in zip(s.token_logprob, texts)],
            "min_k": [mia.min_k_score(lp, k) for lp in s.token_logprob],
            "min_k40": [mia.min_k_score(lp, mia.MUSE_MIN_K) for lp in s.token_logprob],
            "min_k_pp": [mia.min_k_pp_score(z, k) for z in s.token_zscore],
        }
        if role in p.grad_norms:
            per["grad_norm"] = [mia.grad_norm_score(n) for n in p.grad_norms[role]]
        if reference is not None and role in reference.scores:
            ref_lp = reference.scores[role].token_logprob
            per["ref"] = [mia.reference_score(a, b) for a, b in zip(s.token_logprob, ref_lp)]
        for attack, values in per.items():
            out.setdefault(attack, {})[role] = values
    return out


def can_attack(p: Pass) -> bool:
    return "forget" in p.scores and "heldout" in p.scores


NO_REFERENCE = (
    "none: skipped, the reference attack needs a model that never saw the forget set "
    "(--retain-model or --reference-model)"
)


def attack_reference(
    suite: Suite, retain_pass: Pass | None, reference: LoadedModel | None
) -> tuple[Pass | None, str]:
    """The reference attack's reference: the retain (retrained) model, else a user's reference
    model, else none. Never the original, which saw the forget set (Carlini et al., 2021; MUSE)."""
    if retain_pass is not None and can_attack(retain_pass):
        return retain_pass, "retain_model"
    if reference is None:
        return None, NO_REFERENCE
    ref_pass = Pass()
    suite.likelihoods(reference, ref_pass, None, roles=("forget", "heldout"))
    return ref_pass, f"reference_model ({reference.spec})"


def membership_metrics(
    suite: Suite,
    passes: dict[str, Pass],
    retain_pass: Pass | None,
    reference: Pass | None,
    metrics: dict,
    examples: dict,
) -> dict[str, Any]:
    """Attack AUCs per model, MUSE's PrivLeak against the retain model; returns the definitions."""
    retain_auc: dict[str, float] = {}
    scored = dict(passes) | (
        {"retain_model": retain_pass} if retain_pass is not None and can_attack(retain_pass) else {}
    )
    for name, p in scored.items():
        ref = reference if p is not reference else None  # a model is no reference for itself
        for attack, by_role in mia_scores(suite, p, ref).items():
            value = mia.auc(by_role["forget"], by_role["heldout"])
            metrics[name][f"mia.{attack}.auc"] = value
            if name == "retain_model":
                retain_auc[attack] = value
            if name == "model":
                for role in ("forget", "heldout"):
                    rows = examples.get(role, [])
                    if len(rows) == len(by_role[role]):
                        for row, v in zip(rows, by_role[role]):
                            row[f"mia_{attack}"] = v
    for name in passes:
        for attack, value in retain_auc.items():
            if f"mia.{attack}.auc" in metrics[name]:
                metrics[name][f"mia.{attack}.privleak"] = mia.muse_privleak(
                    metrics[name][f"mia.{attack}.auc"], value
                )
        if "mia.min_k40.privleak" in metrics[name]:
            metrics[name]["mia.privleak"] = metrics[name]["mia.min_k40.privleak"]
    return {
        "members": "forget",
        "nonmembers": "heldout",
        "privleak": "MUSE's PrivLeak, 100 * (a_retain - a) / (1 - a_retain) for the AUCs a above (MUSE's "
        f"own AUC is 1 - a); mia.privleak is min_k40's: Min-K% at k={mia.MUSE_MIN_K}, as in MUSE",
        "grad_norm": f"gradient-norm attack on the first {suite.cfg.grad_norm_examples()} forget and "
        "held-out examples only (a backward pass over them): "
        "score = -mean over parameter tensors of ||grad L||_2",
    }
