"""Small, exact forget measures for attacks: teacher-forced answer NLL and greedy answer recall.

Kept in one module so the evaluation suite's metrics can replace them later.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from lm_unlearn.data import PromptFormat, Record
from lm_unlearn.data.tokenize import collate, encode
from lm_unlearn.objectives.outputs import Outputs


@dataclass
class Measures:
    nll: float  # mean over questions of the mean answer-token NLL (nats)
    recall: float  # mean over questions of the greedy answer's content-word recall
    answers: list[str]  # the greedy answers, in question order

    def summary(self) -> dict[str, float]:
        return {"nll": self.nll, "recall": self.recall}

    def to_dict(self) -> dict:
        return asdict(self)


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def answer_nll(
    model, records: list[Record], fmt: PromptFormat, batch_size: int = 8, max_length: int = 256
) -> list[float]:
    """Per-record mean NLL of the response tokens, teacher-forced (prompt tokens excluded)."""
    model.eval()
    pad = fmt.tokenizer.pad_token_id
    out: list[float] = []
    for start in range(0, len(records), batch_size):
        examples = [encode(r, fmt, max_length) for r in records[start : start + batch_size]]
        batch = collate(examples, pad).to(_device(model))
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        out.extend(Outputs(logits, batch).mean_nll.tolist())
    return out


def prompt_ids(fmt: PromptFormat, prompt_text: str) -> list[int]:
    """Token ids of a prompt text, with special tokens added exactly as `encode` adds them."""
    return fmt.tokenizer(prompt_text, add_special_tokens=fmt.kind != "chat")["input_ids"]


@torch.no_grad()
def greedy_answers(
    model, fmt: PromptFormat, prompt_texts: list[str], max_new_tokens: int = 32, batch_size: int = 8
) -> list[str]:
    """Greedy continuations of full prompt texts (already formatted), batched and left-padded."""
    model.eval()
    tokenizer = fmt.tokenizer
    answers: list[str] = []
    for start in range(0, len(prompt_texts), batch_size):
        rows = [prompt_ids(fmt, text) for text in prompt_texts[start : start + batch_size]]
        context = getattr(model.config, "max_position_embeddings", None)
        if context and context > max_new_tokens:
            # Keep the end of an over-long prompt (the question) so prompt + answer fit the context.
            rows = [row[-(context - max_new_tokens) :] for row in rows]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        generated = model.generate(
            input_ids=ids.to(_device(model)),
            attention_mask=mask.to(_device(model)),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
        answers.extend(tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True))
    return answers


def content_words(text: str) -> set[str]:
    """Lower-cased alphanumeric words minus English stop words and single letters."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w for w in words if w not in ENGLISH_STOP_WORDS and (len(w) > 1 or w.isdigit())}


def answer_recall(generated: str, reference: str, prompt: str = "") -> float:
    """Fraction of the reference answer's content words that occur in the generated answer.

    Words already in the question are left out (repeating the question shows no knowledge);
    if that leaves none, all the answer's content words count. 0 when the answer has none.
    """
    wanted = content_words(reference)
    novel = wanted - content_words(prompt)
    wanted = novel or wanted
    if not wanted:
        return 0.0
    return len(wanted & content_words(generated)) / len(wanted)


def measure(
    model,
    records: list[Record],
    fmt: PromptFormat,
    questions: list[str] | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 8,
) -> Measures:
    """NLL of each reference answer after its prompt, and recall of the greedy answer.

    An attack passes records whose prompts it rewrote, and the untouched `questions`, so that
    recall leaves out the words of the question itself, not of the attack's wrapper.
    """
    questions = questions or [r.prompt for r in records]
    nlls = answer_nll(model, records, fmt, batch_size)
    answers = greedy_answers(
        model, fmt, [fmt.prompt_text(r.prompt) for r in records], max_new_tokens, batch_size
    )
    recalls = [answer_recall(a, r.response, q) for a, r, q in zip(answers, records, questions)]
    return Measures(nll=sum(nlls) / len(nlls), recall=sum(recalls) / len(recalls), answers=answers)
