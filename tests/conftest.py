import os
from pathlib import Path

import pytest

# Before anything imports transformers or huggingface_hub, which read these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny import save_tiny  # noqa: E402  (tests/tiny.py, on the path by pyproject's pytest `pythonpath`)


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
