"""A short `yao` run on the real default model (SmolLM2-135M-Instruct). Marked slow."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_unlearn.config import validate_config
from lm_unlearn.data import PromptFormat, collate, encode_records, read_records
from lm_unlearn.data.demo import demo_dataset
from lm_unlearn.engine import train
from lm_unlearn.models import load_model
from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.terms.kl import kl_divergence

pytestmark = pytest.mark.slow


def mean_nll_and_logits(model, tokenizer, role):
    fmt = PromptFormat.choose(tokenizer, "auto")
    examples = encode_records(read_records(demo_dataset(role)), fmt, 256)
    batch = collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return Outputs(logits, batch).mean_nll.mean().item(), logits, batch


def test_short_yao_run_forgets_and_keeps_normal_behaviour(tmp_path):
    cfg = validate_config(
        {
            "name": "yao-it",
            "output_dir": str(tmp_path),
            "method": "yao",
            "train": {"max_steps": 10, "lr": 5e-4, "batch_size": 4, "schedule": "constant", "eval_every": 0},
        }
    )
    result = train(cfg, tmp_path / "yao-it")
    assert result.steps == 10

    original = load_model("builtin:smollm2-135m-instruct")
    # The unlearned model loads with plain transformers, no lm_unlearn code involved.
    unlearned = AutoModelForCausalLM.from_pretrained(tmp_path / "yao-it" / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "yao-it" / "model")

    forget_before, _, _ = mean_nll_and_logits(original.model, original.tokenizer, "forget")
    forget_after, _, _ = mean_nll_and_logits(unlearned, tokenizer, "forget")
    retain_before, ref_logits, retain_batch = mean_nll_and_logits(
        original.model, original.tokenizer, "retain"
    )
    retain_after, new_logits, _ = mean_nll_and_logits(unlearned, tokenizer, "retain")
    kl = kl_divergence(ref_logits, new_logits, retain_batch.attention_mask).item()
    print(
        json.dumps(
            {
                "forget_nll": [forget_before, forget_after],
                "retain_nll": [retain_before, retain_after],
                "retain_kl": kl,
            }
        )
    )

    assert forget_after > forget_before + 1.0
    assert forget_after - forget_before > 3 * (retain_after - retain_before)
    assert kl < 0.5
    manifest = json.loads((tmp_path / "yao-it" / "manifest.json").read_text())
    assert manifest["source_model"]["sha256"]  # the GGUF's hash is the deletion record's source
    assert Path(manifest["source_model"]["path"]).is_dir()
