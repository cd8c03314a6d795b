from pathlib import Path

import pytest
from tiny import save_tiny

from lm_unlearn.config import DatasetConfig
from lm_unlearn.evaluation import EvalConfig, load_eval_data

DEMO = Path(__file__).resolve().parents[2] / "src" / "lm_unlearn" / "data" / "builtin"
EXTRA = Path(__file__).resolve().parents[2] / "src" / "lm_unlearn" / "evaluation" / "builtin"


def small_config(**overrides) -> EvalConfig:
    """The demo sets cut to a few records, short generations, fp32: seconds on the tiny model."""

    def ds(path: Path) -> DatasetConfig:
        return DatasetConfig(path=str(path), limit=6)

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


@pytest.fixture
def cfg() -> EvalConfig:
    return small_config()


@pytest.fixture
def data(cfg):
    return load_eval_data(cfg)


@pytest.fixture(scope="session")
def other_tiny_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """Two more tiny models with other random weights: an 'original' and a 'retain-only' model."""
    root = tmp_path_factory.mktemp("tiny_others")
    return save_tiny(root / "seed1", seed=1), save_tiny(root / "seed2", seed=2)


@pytest.fixture(scope="session")
def full_result(tiny_model_dir, other_tiny_dirs):
    """Every metric group on the tiny models (computed once for the report tests)."""
    from lm_unlearn.evaluation import evaluate

    cfg = small_config()
    return evaluate(
        str(tiny_model_dir),
        load_eval_data(cfg),
        cfg,
        original=str(other_tiny_dirs[0]),
        retain_model=str(other_tiny_dirs[1]),
    )


@pytest.fixture
def make_cfg():
    """small_config as a fixture, for tests that need other settings."""
    return small_config
