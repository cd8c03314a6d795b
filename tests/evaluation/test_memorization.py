"""Exact memorization and extraction strength by hand, and from score_records' forward pass."""

import numpy as np
import pytest
import torch

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.evaluation.likelihood import score_records
from lm_unlearn.evaluation.memorization import (
    exact_memorization,
    extraction_strength,
    greedy_hits,
    memorization_metrics,
)


def test_greedy_hits_by_hand():
    logits = torch.tensor([[[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0]]])  # argmax 1, 0, 2
    targets = torch.tensor([[1, 2, 2]])
    assert greedy_hits(logits, targets).tolist() == [[True, False, True]]


@pytest.mark.parametrize(
    "hits,em,es",
    [
        ([1, 1, 1, 1], 1.0, 1.0),  # k = 0: the whole answer from the prompt alone
        ([0, 1, 1, 1], 0.75, 0.75),  # k = 1: from the first true token on
        ([1, 0, 1, 1], 0.75, 0.5),  # k = 2: a miss inside breaks the run
        ([1, 1, 1, 0], 0.75, 0.0),  # k = 4: the last token is missed, nothing is extracted
        ([0, 0, 0, 0], 0.0, 0.0),
    ],
)
def test_em_and_es_by_hand(hits, em, es):
    hits = np.array(hits, dtype=bool)
    assert exact_memorization(hits) == pytest.approx(em)
    assert extraction_strength(hits) == pytest.approx(es)


def test_means_leave_out_empty_answers():
    rows = [np.array([1, 1], dtype=bool), np.array([0, 1, 0, 1], dtype=bool), np.zeros(0, dtype=bool)]
    assert exact_memorization(rows[2]) is None and extraction_strength(rows[2]) is None
    found = memorization_metrics(rows)
    assert found["exact_memorization"] == pytest.approx((1.0 + 0.5) / 2)
    assert found["extraction_strength"] == pytest.approx((1.0 + 0.25) / 2)


def test_score_records_hits_are_the_teacher_forced_argmax(tiny):
    fmt = PromptFormat.choose(tiny.tokenizer, "auto")
    records = [
        Record("Who is Harry Potter's godfather?", "Sirius Black is Harry Potter's godfather.", "t:1"),
        Record("", "Raw text is scored as a whole.", "t:2"),
    ]
    scores = score_records(tiny.model, fmt, records, batch_size=2, zscores=False)
    batch = collate(encode_records(records, fmt, 256), tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = tiny.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    for i in range(len(records)):
        mask = batch.labels[i, 1:] != -100
        expected = (logits[i, :-1].argmax(-1) == batch.labels[i, 1:])[mask].numpy()
        np.testing.assert_array_equal(scores.token_greedy[i], expected)
        assert len(scores.token_greedy[i]) == len(scores.token_logprob[i])


def test_a_model_that_knows_the_answer_scores_one():
    # A "model" whose logits put all mass on the true next token: EM = ES = 1.
    labels = torch.tensor([[-100, -100, 5, 6, 7]])
    logits = torch.nn.functional.one_hot(labels[:, 1:].clamp(min=0), 8).float() * 10
    mask = labels[:, 1:] != -100
    hits = greedy_hits(logits, labels[:, 1:])[mask].numpy()
    assert memorization_metrics([hits]) == {"exact_memorization": 1.0, "extraction_strength": 1.0}


def test_evaluation_reports_them_for_forget_and_heldout_with_descriptions(tiny_model_dir, make_cfg):
    from lm_unlearn.evaluation import evaluate, load_eval_data
    from lm_unlearn.evaluation.catalog import describe

    cfg = make_cfg(metrics=["likelihood"])
    m = evaluate(str(tiny_model_dir), load_eval_data(cfg), cfg)["metrics"]["model"]
    for role in ("forget", "heldout"):
        for name in ("exact_memorization", "extraction_strength"):
            assert 0.0 <= m[f"{role}.{name}"] <= 1.0
            assert describe(f"{role}.{name}")
    assert m["forget.extraction_strength"] <= m["forget.exact_memorization"]  # trailing run <= all hits
    assert "retain.exact_memorization" not in m


def test_an_original_cached_before_these_metrics_is_computed_again(tmp_path, monkeypatch):
    import json

    from lm_unlearn.evaluation import cache

    monkeypatch.setenv("LM_UNLEARN_CACHE", str(tmp_path))
    old = {"token_logprob": [[-1.0]], "token_zscore": [[0.0]], "kl": None, "tokens": 3}
    entry = {"generations": {}, "extraction": [], "scores": {"forget": old}, "gen_scores": {}, "tokens": 3}
    path = cache._path("k" * 64)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry))
    assert cache.load_pass("k" * 64) is None
    path.write_text(json.dumps(entry | {"scores": {"forget": old | {"token_greedy": [[1]]}}}))
    assert cache.load_pass("k" * 64)["scores"]["forget"].token_greedy[0].tolist() == [True]
