"""Each built-in term against a hand computation on hand-made logits."""

import math
from types import SimpleNamespace

import pytest
import torch

from lm_unlearn.data.tokenize import IGNORE, Batch
from lm_unlearn.objectives import StepContext, build_objective
from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.terms.kl import kl_divergence

LOG = math.log
# Vocabulary of 4; these logits give probabilities [1/8, 1/8, 2/8, 4/8] at every position.
ROW = torch.tensor([LOG(1), LOG(1), LOG(2), LOG(4)])


def batch_of(labels, lengths):
    labels = torch.tensor(labels)
    mask = torch.zeros_like(labels)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids = labels.clamp(min=0)
    return Batch(input_ids=ids, attention_mask=mask, labels=labels)


# Example 0: response tokens 3 then 2 (p = 1/2, 1/4). Example 1: one response token 0 (p = 1/8),
# then padding whose label is IGNORE.
FORGET = batch_of([[IGNORE, 3, 2], [IGNORE, 0, IGNORE]], [3, 2])


class FixedModel(torch.nn.Module):
    def __init__(self, logits_for):
        super().__init__()
        self.logits_for = logits_for

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.logits_for(input_ids))


def uniform_rows(input_ids):
    return ROW.expand(*input_ids.shape, 4).clone()


def test_outputs_sum_only_response_tokens():
    out = Outputs(uniform_rows(FORGET.input_ids), FORGET)
    assert out.seq_logprob.tolist() == pytest.approx([LOG(1 / 2) + LOG(1 / 4), LOG(1 / 8)])
    assert out.mean_nll.tolist() == pytest.approx([(LOG(2) + LOG(4)) / 2, LOG(8)])
    assert out.response_length.tolist() == [2, 1]


def context(batches, model=None, reference=None):
    return StepContext(
        model or FixedModel(uniform_rows), lambda split: batches[split], reference_forward=reference
    )


def test_ga_is_the_negated_per_example_mean_nll():
    objective = build_objective(None, {"ga": 1.0})
    loss, values = objective(context({"forget": FORGET}))
    expected = -(((LOG(2) + LOG(4)) / 2) + LOG(8)) / 2
    assert values["ga"].item() == pytest.approx(expected)
    assert loss.item() == pytest.approx(expected)


def test_mismatch_and_retain_nll_descend_on_their_batches():
    objective = build_objective(None, {"mismatch": {"weight": 1.0, "k": 1}, "retain_nll": 2.0})
    mismatch = batch_of([[IGNORE, IGNORE, 3]], [3])  # one response token, p = 1/2
    retain = batch_of([[IGNORE, 2, 1]], [3])  # p = 1/4 then 1/8
    loss, values = objective(context({"mismatch": mismatch, "retain": retain}))
    assert values["mismatch"].item() == pytest.approx(LOG(2))
    assert values["retain_nll"].item() == pytest.approx((LOG(4) + LOG(8)) / 2)
    assert loss.item() == pytest.approx(LOG(2) + 2 * (LOG(4) + LOG(8)) / 2)


def test_mismatch_k_averages_each_prompts_k_answers_then_the_prompts():
    # Two prompts, k = 2 answers each, prompt-major. Masked NLLs per answer (p = 1/8, 1/8, 1/4, 1/2):
    # prompt 0: (ln 8 + ln 8)/2 and ln 4; prompt 1: ln 2 and (ln 4 + ln 2)/2. Padding carries none.
    mismatch = batch_of(
        [[IGNORE, 0, 1], [IGNORE, 2, IGNORE], [IGNORE, IGNORE, 3], [IGNORE, 2, 3]], [3, 2, 3, 3]
    )
    answers = [[(LOG(8) + LOG(8)) / 2, LOG(4)], [LOG(2), (LOG(4) + LOG(2)) / 2]]
    expected = sum(sum(a) / 2 for a in answers) / 2
    _, values = build_objective(None, {"mismatch": {"k": 2}})(context({"mismatch": mismatch}))
    assert values["mismatch"].item() == pytest.approx(expected)
    # prompts with answers of unequal length: not the token-weighted mean over the batch
    assert expected != pytest.approx((3 * LOG(8) + LOG(4) + LOG(2) + LOG(4) + LOG(2)) / 6)


def test_mismatch_k_defaults_to_the_authors_five_and_must_be_positive():
    from lm_unlearn.errors import ConfigError

    assert build_objective("yao", None).draws_per_prompt() == 5
    with pytest.raises(ConfigError, match="objective.mismatch: k"):
        build_objective(None, {"mismatch": {"k": 0}})


def test_kl_by_hand_and_padding_ignored():
    # p = [1/2, 1/2], q = [1/4, 3/4] at the real position; garbage at the padded one.
    ref = torch.tensor([[[0.0, 0.0], [9.0, -9.0]]])
    cur = torch.tensor([[[LOG(1), LOG(3)], [-9.0, 9.0]]])
    mask = torch.tensor([[1, 0]])
    expected = 0.5 * LOG(0.5 / 0.25) + 0.5 * LOG(0.5 / 0.75)
    assert kl_divergence(ref, cur, mask).item() == pytest.approx(expected)
    assert kl_divergence(ref, ref, mask).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_term_uses_the_reference_and_averages_per_example():
    retain = batch_of([[IGNORE, 1, 1], [IGNORE, 1, IGNORE]], [3, 2])
    shifted = lambda ids: uniform_rows(ids) + torch.tensor([0.0, 0.0, 0.0, 1.0])  # noqa: E731
    objective = build_objective(None, {"kl": 1.0})
    assert objective.needs_reference
    ctx = context(
        {"retain": retain}, model=FixedModel(shifted), reference=lambda b: uniform_rows(b.input_ids)
    )
    _, values = objective(ctx)
    p = torch.softmax(ROW, 0)
    q = torch.softmax(ROW + torch.tensor([0.0, 0.0, 0.0, 1.0]), 0)
    per_position = (p * (p.log() - q.log())).sum().item()
    assert values["kl"].item() == pytest.approx(per_position, rel=1e-5)


def test_yao_recipe_weights():
    objective = build_objective("yao", None)
    assert {t.term.name: t.weight for t in objective.terms} == {"ga": 0.5, "mismatch": 0.05, "kl": 4.0}


def test_unknown_term_recipe_and_parameter_are_clear_errors():
    from lm_unlearn.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown term 'gax'.*known terms"):
        build_objective(None, {"gax": 1.0})
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        build_objective("nope", None)
    with pytest.raises(ConfigError, match="objective.ga: .*beta"):
        build_objective(None, {"ga": {"weight": 1.0, "beta": 2}})


def test_each_batch_is_forwarded_once_however_many_terms_use_it():
    calls = []

    def counting(ids):
        calls.append(ids.shape)
        return uniform_rows(ids)

    objective = build_objective(None, {"ga": 0.5, "retain_nll": 1.0, "kl": 1.0})
    retain = batch_of([[IGNORE, 1, 1]], [3])
    ctx = context(
        {"forget": FORGET, "retain": retain},
        model=FixedModel(counting),
        reference=lambda b: uniform_rows(b.input_ids),
    )
    objective(ctx)
    assert len(calls) == 2  # forget once, retain once (kl and retain_nll share it)


def test_rmu_default_layer_is_wmdps_relative_depth():
    from transformers import LlamaConfig, LlamaForCausalLM

    from lm_unlearn.objectives.terms import rmu

    def model(n):
        size = dict(hidden_size=8, intermediate_size=8, num_attention_heads=2, num_key_value_heads=2)
        return LlamaForCausalLM(LlamaConfig(vocab_size=16, num_hidden_layers=n, **size))

    # WMDP steers layer 7 of Zephyr-7B's 32 (n // 4 gave 8); SmolLM2's 30 keep 7.
    assert rmu.rmu_layer(model(32), None) == 7
    assert rmu.rmu_layer(model(30), None) == 7
    assert rmu.rmu_layer(model(32), -1) == 31


def test_rmu_recipe_defaults_to_the_papers_full_mode():
    from lm_unlearn.config import load_config

    assert load_config(overrides=["method=rmu"]).train.mode == "full"
    assert load_config(overrides=["method=rmu", "train.mode=lora"]).train.mode == "lora"
    assert load_config(overrides=["objective={rmu: 1.0}"]).train.mode == "lora"  # own objective: as given
    assert load_config(overrides=["method=npo"]).train.mode == "lora"


def test_rmu_leaves_out_the_leading_tokens_every_example_shares():
    from lm_unlearn.data.tokenize import Batch
    from lm_unlearn.objectives.terms.rmu import distinct_positions, shared_prefix_length

    def batch(rows):
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return Batch(ids, mask, torch.full_like(ids, -100))

    forget = batch([[5, 6, 7, 11, 12], [5, 6, 7, 13]])  # template 5 6 7, then the question
    retain = batch([[5, 6, 7, 20, 21, 22]])
    assert shared_prefix_length(forget, retain) == 3
    assert distinct_positions(forget.attention_mask, 3).tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 1, 0]]
    assert shared_prefix_length(batch([[1, 2]]), batch([[1, 2, 3]])) == 2  # one is a prefix of all
    assert shared_prefix_length(batch([[4, 2]]), batch([[1, 2]])) == 0
