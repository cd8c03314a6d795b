"""Fixtures of the benchmark tests."""

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One prepared-model cache for the module, so the CLI tests share the taught models."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LM_UNLEARN_CACHE", str(root))
        yield root
