"""Forget measures for attacks, read with the evaluation suite's own scorer and generator.

Before and after an attack the same three numbers are taken on the same questions:
  nll            mean over questions of the mean answer-token NLL, teacher-forced, fp32
                 (`evaluation.likelihood.score_records`: the suite's `forget.nll`);
  rougeL_recall  mean ROUGE-L recall of the greedy answer against the reference
                 (`evaluation.text_metrics.rouge_l`: the suite's `forget.rougeL_recall`);
  recall         mean content-word recall of the greedy answer (`answer_recall`): the share
                 of the reference's content words not already in the question that the
                 answer says; unlike ROUGE-L it gives no credit for echoing the question.
Greedy answers come from `evaluation.generation.generate` (batched, left-padded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from lm_unlearn.data import PromptFormat, Record
from lm_unlearn.evaluation.generation import generate
from lm_unlearn.evaluation.likelihood import score_records
from lm_unlearn.evaluation.text_metrics import rouge_l


@dataclass
class Measures:
    nll: float
    recall: float
    rougeL_recall: float
    answers: list[str]  # the greedy answers, in question order

    def summary(self) -> dict[str, float]:
        return {"nll": self.nll, "recall": self.recall, "rougeL_recall": self.rougeL_recall}


def answer_nll(
    model, records: list[Record], fmt: PromptFormat, batch_size: int = 8, max_length: int = 256
) -> list[float]:
    """Per-record mean NLL of the response tokens, teacher-forced (prompt tokens excluded)."""
    scores = score_records(model, fmt, records, max_length=max_length, batch_size=batch_size, zscores=False)
    return scores.mean_nll.tolist()


def greedy_answers(
    model, fmt: PromptFormat, prompt_texts: list[str], max_new_tokens: int = 32, batch_size: int = 8
) -> list[str]:
    """Greedy continuations of full prompt texts (already formatted), batched."""
    out = generate(
        model,
        fmt.tokenizer,
        prompt_texts,
        add_special_tokens=fmt.kind != "chat",
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    return out.texts


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
    rouge = [rouge_l(a, r.response)[1] for a, r in zip(answers, records)]
    n = len(records)
    return Measures(nll=sum(nlls) / n, recall=sum(recalls) / n, rougeL_recall=sum(rouge) / n, answers=answers)
