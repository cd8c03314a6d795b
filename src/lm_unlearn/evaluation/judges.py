"""Pluggable judges: does a generation still show what was to be forgotten?

A judge maps texts to scores in [0, 1]; a text is undesirable when its score >= threshold.
Three kinds: a keyword/regex rule, a classifier trained here from labelled examples
(MiniLM embeddings + logistic regression), and any Hugging Face sequence classifier.
"""

from __future__ import annotations

import re
from typing import Protocol

import numpy as np

from lm_unlearn.errors import ConfigError
from lm_unlearn.evaluation.config import JudgeConfig


class Judge(Protocol):
    name: str
    threshold: float

    def scores(self, texts: list[str]) -> list[float]: ...


class KeywordJudge:
    """Score 1.0 when any pattern matches the text, else 0.0."""

    def __init__(self, patterns: list[str], threshold: float = 0.5):
        if not patterns:
            raise ConfigError("judge.kind=keyword needs judge.patterns (a list of regexes)")
        self.patterns = []
        for p in patterns:
            try:
                self.patterns.append(re.compile(p))
            except re.error as exc:
                raise ConfigError(f"judge.patterns: {p!r} is not a valid regex ({exc})") from None
        self.threshold = threshold
        self.name = f"keyword ({len(patterns)} patterns)"

    def scores(self, texts: list[str]) -> list[float]:
        return [float(any(p.search(t) for p in self.patterns)) for t in texts]


class ClassifierJudge:
    """Logistic regression (scikit-learn) on all-MiniLM-L6-v2 sentence embeddings.

    Trained on `positive` (undesirable) and `negative` (acceptable) texts; the score is the
    predicted probability of the positive class.
    """

    def __init__(self, positive: list[str], negative: list[str], threshold: float = 0.5, encoder=None):
        from sklearn.linear_model import LogisticRegression

        from lm_unlearn.evaluation.embeddings import default_encoder

        if len(positive) < 2 or len(negative) < 2:
            raise ConfigError(
                f"judge.kind=classifier needs at least 2 positive and 2 negative examples "
                f"(got {len(positive)} and {len(negative)}); set judge.positive / judge.negative"
            )
        self.encoder = encoder or default_encoder()
        x = self.encoder.encode(positive + negative)
        y = np.array([1] * len(positive) + [0] * len(negative))
        # Balanced weights: the two sets are rarely the same size (e.g. 24 forget vs 48 retain).
        self.model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(x, y)
        self.threshold = threshold
        self.name = f"classifier (MiniLM + logistic regression, {len(positive)}+{len(negative)} examples)"

    def scores(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return self.model.predict_proba(self.encoder.encode(texts))[:, 1].tolist()


class HFClassifierJudge:
    """Any Hugging Face sequence classifier; the score is the softmax probability of `label`."""

    def __init__(self, model: str, label: str | int = 1, threshold: float = 0.5, batch_size: int = 32):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model).eval()
        except OSError as exc:
            raise ConfigError(
                f"judge.model {model!r}: could not load a sequence classifier ({exc})"
            ) from None
        labels = self.model.config.id2label
        if isinstance(label, str) and not label.isdigit():
            by_name = {v: k for k, v in labels.items()}
            if label not in by_name:
                raise ConfigError(f"judge.label {label!r} is not one of the model's labels {list(by_name)}")
            self.index = int(by_name[label])
        else:
            self.index = int(label)
            if self.index not in labels:
                raise ConfigError(f"judge.label {label} is out of range; labels: {labels}")
        self.torch = torch
        self.batch_size = batch_size
        self.threshold = threshold
        self.name = f"hf classifier {model} (label {labels[self.index]})"

    def scores(self, texts: list[str]) -> list[float]:
        out: list[float] = []
        with self.torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[start : start + self.batch_size], padding=True, truncation=True, return_tensors="pt"
                )
                probs = self.model(**enc).logits.float().softmax(-1)[:, self.index]
                out.extend(probs.tolist())
        return out


def build_judge(cfg: JudgeConfig, forget_texts: list[str], retain_texts: list[str]) -> Judge | None:
    """The judge `cfg` asks for; the classifier defaults to forget vs retain responses."""
    if cfg.kind == "none":
        return None
    if cfg.kind == "keyword":
        return KeywordJudge(cfg.patterns, cfg.threshold)
    if cfg.kind == "classifier":
        from lm_unlearn.data import read_records

        positive = (
            [r.response for r in read_records(cfg.positive, "judge.positive")]
            if cfg.positive
            else forget_texts
        )
        negative = (
            [r.response for r in read_records(cfg.negative, "judge.negative")]
            if cfg.negative
            else retain_texts
        )
        return ClassifierJudge(positive, negative, cfg.threshold)
    if cfg.model is None:
        raise ConfigError("judge.kind=hf needs judge.model (a local directory or hub id)")
    return HFClassifierJudge(cfg.model, cfg.label, cfg.threshold)
