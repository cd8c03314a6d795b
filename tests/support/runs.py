"""Forget-set NLL of a saved model, and parameter comparisons, for method tests."""

import torch

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.models import load_model
from lm_unlearn.objectives.outputs import Outputs
from support.tiny import FORGET_ROWS


def forget_logits(model_dir):
    """(logits, batch) of the model on the tiny forget set."""
    loaded = load_model(str(model_dir))
    fmt = PromptFormat.choose(loaded.tokenizer, "auto")
    records = [Record(r["prompt"], r["response"], "forget") for r in FORGET_ROWS]
    batch = collate(encode_records(records, fmt, 64), loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        return loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, batch


def forget_nll(model_dir) -> float:
    return Outputs(*forget_logits(model_dir)).mean_nll.mean().item()


def weights(model_dir) -> dict[str, torch.Tensor]:
    return dict(load_model(str(model_dir)).model.state_dict())


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}
