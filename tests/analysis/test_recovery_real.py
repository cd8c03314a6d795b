"""The module map and exact-reconstruction property on the real default model (SmolLM2-135M)."""

import pytest
import torch
from test_recovery import UPSTREAM, perturbed

from lm_unlearn.analysis import arch
from lm_unlearn.analysis.recovery import question_batches, recovery_scores
from lm_unlearn.config import DatasetConfig
from lm_unlearn.data import PromptFormat, read_records
from lm_unlearn.data.demo import demo_dataset


@pytest.mark.slow
def test_full_window_reconstructs_smollm2():
    from lm_unlearn.models import load_model

    torch.set_num_threads(1)
    loaded = load_model("builtin:smollm2-135m-instruct")
    original = loaded.model.eval()
    fmt = PromptFormat.choose(loaded.tokenizer, "auto")
    records = read_records(DatasetConfig(path=demo_dataset("forget").path, limit=2), "forget")
    batches = question_batches(records, fmt)
    everything = [range(arch.num_layers(original))]
    unlearned = perturbed(original, UPSTREAM, scale=0.01)
    scores = recovery_scores(original, unlearned, batches, everything, ("mlp_coef+attn_out", "mlp_value"))
    assert scores["mlp_coef+attn_out"][0] == pytest.approx(1.0, abs=1e-4)
    # The value vectors were not changed, so restoring them gives nothing back.
    assert scores["mlp_value"][0] == pytest.approx(0.0, abs=1e-6)
    del unlearned
    values_only = perturbed(original, ("down_proj",), scale=0.01)
    scores = recovery_scores(original, values_only, batches, everything, ("mlp_value",))
    assert scores["mlp_value"][0] == pytest.approx(1.0, abs=1e-4)
