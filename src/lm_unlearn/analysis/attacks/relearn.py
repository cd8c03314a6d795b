"""Relearning attack: a few fine-tuning steps on part of the forget set (or on related text),
then measure on the questions it did not see. Knowledge that was hidden rather than removed
returns after far fewer steps than learning it afresh would need (Lynch et al. 2024,
"Eight Methods to Evaluate Robust Unlearning in LLMs"; Hu et al. 2024, "Jogging the Memory of
Unlearned LLMs Through Targeted Relearning Attacks")."""

from __future__ import annotations

import copy

import torch

from lm_unlearn.analysis.attacks.verdict import verdict
from lm_unlearn.analysis.measure import answer_nll, measure
from lm_unlearn.data import PromptFormat, Record
from lm_unlearn.data.tokenize import collate, encode
from lm_unlearn.errors import DataError
from lm_unlearn.objectives.outputs import Outputs


def split_forget(records: list[Record], fraction: float) -> tuple[list[Record], list[Record]]:
    """The first `fraction` of the forget set to train on, the rest to measure on."""
    if len(records) < 2:
        raise DataError("relearn needs at least 2 forget records (some to train on, some to measure)")
    n = min(max(1, round(len(records) * fraction)), len(records) - 1)
    return records[:n], records[n:]


def finetune(
    model, records: list[Record], fmt: PromptFormat, steps: int, lr: float, batch_size: int, seed: int = 0
) -> None:
    """Plain AdamW on the mean answer NLL, cycling through `records` in order."""
    torch.manual_seed(seed)
    examples = [encode(r, fmt, 256) for r in records]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    device = next(model.parameters()).device
    for step in range(steps):
        chosen = [examples[(step * batch_size + i) % len(examples)] for i in range(batch_size)]
        batch = collate(chosen, fmt.tokenizer.pad_token_id).to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss = Outputs(logits, batch).mean_nll.mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()


def relearn(
    model,
    fmt: PromptFormat,
    records: list[Record],
    original=None,
    fraction: float = 0.5,
    steps: int = 10,
    lr: float = 2e-5,
    batch_size: int = 4,
    related: list[Record] | None = None,
    max_new_tokens: int = 32,
) -> dict:
    """Fine-tune a copy of `model` on part of the forget set (or on `related` records); measure
    on the forget questions it was not trained on."""
    if related:
        train, held = related, records
    else:
        train, held = split_forget(records, fraction)
    before = measure(model, held, fmt, max_new_tokens=max_new_tokens)
    attacked = copy.deepcopy(model)
    train_nll_before = _mean(answer_nll(attacked, train, fmt))
    finetune(attacked, train, fmt, steps, lr, batch_size)
    train_nll_after = _mean(answer_nll(attacked, train, fmt))
    after = measure(attacked, held, fmt, max_new_tokens=max_new_tokens)
    del attacked
    orig = (
        measure(original, held, fmt, max_new_tokens=max_new_tokens).summary()
        if original is not None
        else None
    )
    return {
        "attack": "relearn",
        "settings": {"steps": steps, "lr": lr, "batch_size": batch_size, "fraction": fraction},
        "trained_on": len(train),
        "measured_on": len(held),
        "train_nll": {"before": train_nll_before, "after": train_nll_after},
        "before": before.summary(),
        "after": after.summary(),
        "original": orig,
        "answers_after": after.answers,
        "verdict": verdict("relearn", before.summary(), after.summary(), orig, f" ({steps} steps)"),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
