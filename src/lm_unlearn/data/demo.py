"""The built-in demo scenario: forget what the model knows about Harry Potter (the concept
used by Eldan & Russinovich, "Who's Harry Potter?", 2023), keep general knowledge.

The facts are short QA pairs written by this project; the held-out questions are never
trained on and measure generalisation.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.config import DatasetConfig

BUILTIN = Path(__file__).parent / "builtin"


def demo_dataset(role: str) -> DatasetConfig:
    return DatasetConfig(path=str(BUILTIN / f"demo_{role}.jsonl"))
