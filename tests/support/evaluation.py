"""The demo evaluation sets cut small for the tiny model (the evaluation and report tests)."""

from pathlib import Path

from lm_unlearn.config import DatasetConfig
from lm_unlearn.evaluation import EvalConfig

DEMO = Path(__file__).resolve().parents[2] / "src" / "lm_unlearn" / "data" / "builtin"
EXTRA = Path(__file__).resolve().parents[2] / "src" / "lm_unlearn" / "evaluation" / "builtin"


def small_config(limit: int = 6, **overrides) -> EvalConfig:
    """The demo sets cut to `limit` records each, short generations, fp32: seconds on the tiny
    model."""

    def ds(path: Path) -> DatasetConfig:
        return DatasetConfig(path=str(path), limit=limit)

    values = dict(
        forget=ds(DEMO / "demo_forget.jsonl"),
        heldout=ds(DEMO / "demo_heldout.jsonl"),
        retain=ds(DEMO / "demo_retain.jsonl"),
        paraphrased=ds(EXTRA / "demo_paraphrased.jsonl"),
        unrelated=ds(EXTRA / "demo_unrelated.jsonl"),
        judge={"kind": "keyword", "patterns": ["(?i)harry", "(?i)hogwarts"]},
        max_new_tokens=6,
        batch_size=4,
        precision="fp32",
        cache_original=False,  # tests of the cache turn it on with a temporary cache directory
    )
    values.update(overrides)
    return EvalConfig(**values)
