import copy
import math

import pytest
import torch
from support.archs import CONFIGS, VOCAB, tiny_arch
from torch import nn

from lm_unlearn.analysis import arch
from lm_unlearn.analysis.recovery import (
    INTERVENTIONS,
    aggregate_krs,
    answer_positions,
    intervene,
    krs,
    layer_windows,
    record_activations,
    recovery_scores,
)
from lm_unlearn.data.tokenize import IGNORE, Batch
from lm_unlearn.errors import ModelError

ARCHS = sorted(CONFIGS)
# Weights upstream of both patch points: attention q/k/v and the MLP's input projections.
UPSTREAM = ("q_proj", "k_proj", "v_proj", "up_proj", "gate_proj", "c_attn", "c_fc", "fc1")


def make_batch(rows: int = 3, width: int = 9, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (rows, width), generator=g)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :4] = IGNORE  # a 4-token prompt
    mask[0, -2:] = 0  # right padding on the first row
    labels[0, -2:] = IGNORE
    return Batch(input_ids=ids, attention_mask=mask, labels=labels)


def perturbed(model: nn.Module, keys: tuple[str, ...], scale: float = 0.5, seed: int = 1) -> nn.Module:
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in other.named_parameters():
            if any(k in name for k in keys):
                param.add_(scale * torch.randn(param.shape, generator=g))
    return other


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def test_krs_hand_computed():
    orig = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    unl = torch.tensor([[3.0, 2.0], [0.0, 2.0]])  # SSE to orig: 4 + 4 = 8
    rec = torch.tensor([[2.0, 2.0], [0.0, 1.0]])  # SSE to orig: 1 + 1 = 2
    assert krs(orig, unl, rec) == pytest.approx(1 - 2 / 8)
    assert krs(orig, unl, orig) == 1.0
    assert krs(orig, unl, unl) == 0.0
    assert krs(orig, orig, unl) != krs(orig, orig, unl)  # NaN: nothing was unlearned


def test_krs_per_question_then_averaged_by_hand():
    base = torch.tensor([8.0, 2.0])  # SSE(original, unlearned) per question
    patched = torch.tensor([2.0, 1.0])  # SSE(original, patched) per question
    assert aggregate_krs(base, patched) == pytest.approx(((1 - 2 / 8) + (1 - 1 / 2)) / 2)  # 0.625
    assert aggregate_krs(base, patched, "pooled") == pytest.approx(1 - 3 / 10)
    # A question the unlearning did not change has no ratio and is left out of the mean.
    assert aggregate_krs(torch.tensor([8.0, 0.0]), torch.tensor([2.0, 5.0])) == pytest.approx(0.75)
    assert math.isnan(aggregate_krs(torch.zeros(2), torch.ones(2)))


def test_per_question_krs_is_the_mean_of_single_question_scores():
    original = tiny_arch("llama")
    unlearned = perturbed(original, UPSTREAM)
    whole = make_batch(rows=3)
    rows = [
        Batch(*(t[i : i + 1] for t in (whole.input_ids, whole.attention_mask, whole.labels)))
        for i in range(3)
    ]
    windows = layer_windows(3, 3)
    together = recovery_scores(original, unlearned, [whole], windows)
    alone = [recovery_scores(original, unlearned, [row], windows, aggregate="pooled") for row in rows]
    for name in INTERVENTIONS:
        for i in range(len(windows)):
            expected = sum(one[name][i] for one in alone) / 3
            assert together[name][i] == pytest.approx(expected, abs=1e-5)
    pooled = recovery_scores(original, unlearned, [whole], windows, aggregate="pooled")
    assert pooled["mlp_coef"] != pytest.approx(together["mlp_coef"], abs=1e-4)  # the two forms differ


def test_answer_positions_align_logits_with_predicted_tokens():
    batch = make_batch()
    pos = answer_positions(batch)
    # logit t predicts token t+1: the last prompt position (3) predicts the first answer token.
    assert pos[1].tolist() == [False, False, False, True, True, True, True, True, False]
    assert pos[0].tolist() == [False, False, False, True, True, True, False, False, False]


def test_layer_windows_centred_on_every_layer_as_in_the_paper():
    # Hong et al.: a window of 5 centred on each layer, l-2..l+2, truncated at the edges.
    assert [list(w) for w in layer_windows(6, 5)] == [
        [0, 1, 2],
        [0, 1, 2, 3],
        [0, 1, 2, 3, 4],
        [1, 2, 3, 4, 5],
        [2, 3, 4, 5],
        [3, 4, 5],
    ]
    assert [list(w) for w in layer_windows(4, 2)] == [[0, 1], [1, 2], [2, 3], [3]]
    assert [list(w) for w in layer_windows(6, 5, 1, 3)] == [[1, 2, 3], [1, 2, 3], [1, 2, 3]]


def test_layer_windows_start_aligned():
    assert [list(w) for w in layer_windows(4, 2, align="start")] == [[0, 1], [1, 2], [2, 3]]
    assert [list(w) for w in layer_windows(6, 5, 1, 3, align="start")] == [[1, 2, 3]]
    with pytest.raises(ModelError, match="outside"):
        layer_windows(4, 2, 0, 7)


@pytest.mark.parametrize("name", ARCHS)
def test_module_map_and_unembed_match_model(name):
    model = tiny_arch(name)
    batch = make_batch()
    captured = {}
    last = arch.decoder_layers(model)[-1]
    handle = last.register_forward_hook(
        lambda m, a, o: captured.update(h=o[0] if isinstance(o, tuple) else o)
    )
    out = logits(model, batch)
    handle.remove()
    torch.testing.assert_close(arch.unembed(model, captured["h"]), out)


@pytest.mark.parametrize("name", ARCHS)
def test_interventions_leave_model_unchanged_after_exit(name):
    model = tiny_arch(name)
    other = tiny_arch(name, seed=5)
    batch = make_batch()
    before = logits(model, batch)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    _, acts = record_activations(other, batch)
    for intervention in INTERVENTIONS:
        with intervene(model, range(arch.num_layers(model)), intervention, acts, other):
            assert not torch.equal(logits(model, batch), before)  # the intervention did act
        torch.testing.assert_close(logits(model, batch), before, rtol=0, atol=0)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("answer_only", [False, True])
def test_patching_all_layers_reconstructs_exactly(name, answer_only):
    original = tiny_arch(name)
    unlearned = perturbed(original, UPSTREAM)
    batch = make_batch()
    everything = [range(arch.num_layers(original))]
    scores = recovery_scores(original, unlearned, [batch], everything, answer_only=answer_only)
    assert scores["mlp_coef+attn_out"][0] == pytest.approx(1.0, abs=1e-5)
    assert scores["mlp_coef"][0] < 0.99  # one patch alone does not undo attention changes


@pytest.mark.parametrize("name", ARCHS)
def test_restoring_all_value_vectors_reconstructs_exactly(name):
    original = tiny_arch(name)
    keys = (arch.module_map(original).mlp_out,)
    unlearned = perturbed(original, keys)
    scores = recovery_scores(original, unlearned, [make_batch()], [range(arch.num_layers(original))])
    assert scores["mlp_value"][0] == pytest.approx(1.0, abs=1e-6)


def test_empty_window_scores_zero():
    original = tiny_arch("llama")
    unlearned = perturbed(original, UPSTREAM)
    scores = recovery_scores(original, unlearned, [make_batch()], [range(0)])
    assert all(values == [0.0] for values in scores.values())


def test_scores_do_not_depend_on_batching():
    original = tiny_arch("qwen2")
    unlearned = perturbed(original, UPSTREAM)
    whole = make_batch(rows=4)
    split = [
        Batch(*(t[i : i + 1] for t in (whole.input_ids, whole.attention_mask, whole.labels)))
        for i in range(4)
    ]
    windows = layer_windows(3, 2)
    a = recovery_scores(original, unlearned, [whole], windows)
    b = recovery_scores(original, unlearned, split, windows)
    for name in INTERVENTIONS:
        assert a[name] == pytest.approx(b[name], abs=1e-4)
        assert all(-1.0 < v < 1.0 for v in a[name])


def test_unknown_architecture_is_a_clear_error():
    class Config:
        model_type = "bert"

    class Odd(nn.Module):
        config = Config()

    with pytest.raises(ModelError, match="does not know the architecture 'bert'.*known: gemma"):
        arch.module_map(Odd())


def test_recovery_scores_the_originals_greedy_answers(tiny_model_dir):
    from lm_unlearn.analysis.recovery import analyze_recovery, original_answers
    from lm_unlearn.data import PromptFormat, Record
    from lm_unlearn.evaluation.generation import generate
    from lm_unlearn.models import load_model

    loaded = load_model(str(tiny_model_dir))
    fmt = PromptFormat.choose(loaded.tokenizer, "auto")
    records = [
        Record("Who wrote the books?", "J.K. Rowling.", "q0"),
        Record("Name the owl.", "Hedwig.", "q1"),
    ]
    prompts = [fmt.prompt_text(r.prompt) for r in records]
    greedy = generate(
        loaded.model, loaded.tokenizer, prompts, add_special_tokens=fmt.kind != "chat", max_new_tokens=30
    )
    answered = original_answers(loaded.model, records, fmt)
    assert [r.response for r in answered] == [t for t in greedy.texts if t.strip()]
    unlearned = perturbed(loaded.model, UPSTREAM, scale=0.05)
    result = analyze_recovery(loaded.model, unlearned, records, fmt, window=1)
    assert result["answers"] == "original_greedy" and result["centres"] == [0, 1]
