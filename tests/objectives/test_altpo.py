"""altpo: the term by hand, the alternate batch, the alternates' generation and cache, and real runs."""

import json
import math

import pytest
import torch
from support.tiny import tiny_run_config, train_until_checkpoint

from lm_unlearn.data import PromptFormat, Record, encode_records
from lm_unlearn.data.sampling import StepData
from lm_unlearn.data.tokenize import IGNORE, Batch
from lm_unlearn.engine import train
from lm_unlearn.objectives import StepContext, build_objective
from lm_unlearn.objectives.alternates import ensure_alternates, record_key

LOG = math.log
ROW = torch.tensor([LOG(1), LOG(1), LOG(2), LOG(4)])  # p = [1/8, 1/8, 2/8, 4/8] under the model


def batch_of(labels):
    labels = torch.tensor(labels)
    return Batch(input_ids=labels.clamp(min=0), attention_mask=torch.ones_like(labels), labels=labels)


class Rows(torch.nn.Module):
    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": ROW.expand(*input_ids.shape, 4).clone()})()


def test_altpo_by_hand_two_prompts_two_alternates_each():
    # Reference: uniform, log p = ln(1/4) per token. Model: log p(3) = ln 1/2, log p(2) = ln 1/4,
    # log p(0) = ln 1/8. Forget answers: [3] and [0, 0]; alternates: [2], [3, 3] | [3], [2, 0].
    forget = batch_of([[IGNORE, 3, IGNORE], [IGNORE, 0, 0]])
    alternate = batch_of([[IGNORE, 2, IGNORE], [IGNORE, 3, 3], [IGNORE, 3, IGNORE], [IGNORE, 2, 0]])
    q = LOG(1 / 4)
    ratio_forget = [LOG(1 / 2) - q, 2 * (LOG(1 / 8) - q)]
    ratio_alt = [[LOG(1 / 4) - q, 2 * (LOG(1 / 2) - q)], [LOG(1 / 2) - q, LOG(1 / 4) + LOG(1 / 8) - 2 * q]]
    beta = 0.5

    def term(margin):
        return -(2 / beta) * math.log(1 / (1 + math.exp(-beta * margin)))

    expected = sum(sum(term(a - ratio_forget[i]) for a in ratio_alt[i]) / 2 for i in range(2)) / 2
    batches = {"forget": forget, "alternate": alternate}
    ctx = StepContext(
        Rows(), lambda split: batches[split], reference_forward=lambda b: torch.zeros(*b.input_ids.shape, 4)
    )
    objective = build_objective(None, {"altpo": {"beta": beta, "k": 2}})
    assert objective.needs_reference and objective.reference_splits == ("alternate", "forget")
    _, values = objective(ctx)
    assert values["altpo"].item() == pytest.approx(expected, rel=1e-6)


def test_altpo_recipe_and_defaults():
    objective = build_objective("altpo", None)
    assert {t.term.name: t.weight for t in objective.terms} == {"altpo": 1.0, "retain_nll": 1.0}
    altpo = next(t for t in objective.terms if t.term.name == "altpo")
    assert altpo.params["k"] == 5 and altpo.params["beta"] == 0.1
    settings = {"k": 5, "temperature": 1.0, "max_new_tokens": 200, "seed": 0}
    assert objective.generated_answers() == settings  # what the engine reads, not the term's name
    assert build_objective(None, {"altpo": {"k": 2}}).generated_answers() == settings | {"k": 2}
    assert build_objective("npo", None).generated_answers() is None


FORGET = [Record(f"Forget question {i}?", f"Secret {i}.", f"f{i}") for i in range(4)]


def test_alternate_batch_pairs_each_forget_prompt_with_its_own_alternates(tiny):
    fmt = PromptFormat.choose(tiny.tokenizer, "chat")
    alternates = [[f"Alt {i}-{j}." for j in range(3)] for i in range(4)]
    data = StepData(
        encode_records(FORGET, fmt, 64), FORGET, None, None, fmt, batch_size=2, retain_batch_size=2,
        max_length=64, seed=1, alternates=alternates,
    )  # fmt: skip
    for step in range(3):
        examples = data.alternate_examples(step)
        assert len(examples) == 6
        for row, index in enumerate(data.forget_indices(step)):
            for j, example in enumerate(examples[row * 3 : (row + 1) * 3]):
                text = tiny.tokenizer.decode(example.input_ids)
                assert f"Forget question {index}?" in text and f"Alt {index}-{j}." in text


def test_alternates_are_generated_once_reproducibly_and_read_back(tiny, tmp_path, monkeypatch):
    fmt = PromptFormat.choose(tiny.tokenizer, "chat")
    settings = {"k": 3, "temperature": 1.0, "max_new_tokens": 8, "seed": 0}
    first = ensure_alternates(tiny.model, fmt, FORGET, tmp_path / "a.jsonl", settings)
    assert [len(a) for a in first] == [3] * 4 and all(t.strip() for a in first for t in a)
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert {r["key"] for r in rows} == {record_key(r) for r in FORGET}
    # each record's draws depend on its own seed, not on the other records or their order
    again = ensure_alternates(tiny.model, fmt, FORGET[::-1], tmp_path / "b.jsonl", settings)
    assert again == first[::-1]
    assert len({t for a in first for t in a}) > 4  # sampled, not one greedy answer repeated

    def no_generation(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(tiny.model, "generate", no_generation)
    assert ensure_alternates(tiny.model, fmt, FORGET, tmp_path / "a.jsonl", settings) == first
    with pytest.raises(AssertionError, match="cache"):  # other settings: generated anew
        ensure_alternates(tiny.model, fmt, FORGET, tmp_path / "a.jsonl", settings | {"k": 2})


ALTPO = "{altpo: {max_new_tokens: 16}, retain_nll: 1}"


def test_altpo_run_raises_forget_nll_and_resumes_without_regenerating(tmp_path, tiny_model_dir, monkeypatch):
    settings = {"method": "altpo", "objective": ALTPO, "train.max_steps": 4, "train.checkpoint_every": 2}
    settings |= {"train.schedule": "constant", "train.batch_size": 4}
    straight = train(tiny_run_config(tmp_path / "a", tiny_model_dir, **settings), tmp_path / "a" / "run")
    nll = [r["forget_nll"] for r in straight.history]
    assert nll[-1] > nll[0] + 0.2, nll
    cached = (straight.run_dir / "alternates.jsonl").read_text()
    assert len(cached.splitlines()) == 4

    cfg = tiny_run_config(tmp_path / "b", tiny_model_dir, **settings)
    train_until_checkpoint(cfg, tmp_path / "b" / "run", monkeypatch)
    assert (tmp_path / "b" / "run" / "alternates.jsonl").read_text() == cached  # same seeds, same text

    def no_generation(*args, **kwargs):
        raise AssertionError("a resumed run must read its alternates, not generate them")

    monkeypatch.setattr("transformers.generation.utils.GenerationMixin.generate", no_generation)
    resumed = train(cfg, tmp_path / "b" / "run", resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_altpo_generates_its_alternates_with_bf16_frozen_weights(tmp_path, tiny_model_dir):
    """On bf16 hardware a LoRA run keeps the frozen base in bf16 beside fp32 adapters; generating
    the alternates outside the run's autocast failed there (float != BFloat16 in a matmul)."""
    settings = {"method": "altpo", "objective": ALTPO, "train.max_steps": 1, "train.batch_size": 4}
    settings |= {"train.precision": "bf16", "train.frozen_dtype": "bf16", "train.mode": "lora"}
    result = train(tiny_run_config(tmp_path, tiny_model_dir, **settings), tmp_path / "run")
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["frozen_dtype"]["dtype"] == "bf16" and manifest["frozen_dtype"]["parameters"] > 0
    assert len((result.run_dir / "alternates.jsonl").read_text().splitlines()) == 4
