import os
from pathlib import Path

import pytest

# Before anything imports transformers or huggingface_hub, which read these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from support.evaluation import small_config  # noqa: E402  (tests/support/, on the path by pyproject's pytest `pythonpath`)
from support.tiny import save_tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random Llama with a chat template (local HF directory)."""
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_plain_model_dir(tmp_path_factory) -> Path:
    """The same tiny model, its tokenizer without a chat template."""
    return save_tiny(tmp_path_factory.mktemp("tiny_plain") / "model", chat=False)


@pytest.fixture
def tiny(tiny_model_dir):
    from lm_unlearn.models import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture
def cfg():
    """The small evaluation config (support.evaluation.small_config)."""
    return small_config()


@pytest.fixture
def data(cfg):
    from lm_unlearn.evaluation import load_eval_data

    return load_eval_data(cfg)


@pytest.fixture(scope="session")
def other_tiny_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """Two more tiny models with other random weights: an 'original' and a 'retain-only' model."""
    root = tmp_path_factory.mktemp("tiny_others")
    return save_tiny(root / "seed1", seed=1), save_tiny(root / "seed2", seed=2)


@pytest.fixture(scope="session")
def full_result(tiny_model_dir, other_tiny_dirs):
    """Every metric group on the tiny models (computed once for the report tests)."""
    from lm_unlearn.evaluation import evaluate, load_eval_data

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
