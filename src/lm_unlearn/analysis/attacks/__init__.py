"""Attacks on an unlearned model: does the forgotten knowledge come back?

Each attack takes the model, the prompt format and the forget questions, and returns a
JSON-ready dict with the forget measures before and after the attack and a one-line verdict.
"""

from __future__ import annotations

from collections.abc import Callable

from lm_unlearn.analysis.attacks.logit_lens import logit_lens
from lm_unlearn.analysis.attacks.prompts import jailbreak, paraphrase
from lm_unlearn.analysis.attacks.quantize import quantize
from lm_unlearn.analysis.attacks.relearn import relearn

ATTACKS: dict[str, Callable[..., dict]] = {
    "relearn": relearn,
    "quantize": quantize,
    "paraphrase": paraphrase,
    "jailbreak": jailbreak,
    "logit_lens": logit_lens,
}

__all__ = ["ATTACKS"]
