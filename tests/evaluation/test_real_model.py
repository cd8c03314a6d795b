import pytest

from lm_unlearn.evaluation import evaluate, load_eval_data


@pytest.mark.slow
def test_default_model_knows_the_demo_facts(make_cfg):
    """SmolLM2-135M-Instruct before unlearning: names Harry Potter facts, fluent on normal text."""
    cfg = make_cfg(max_new_tokens=16, batch_size=8, precision="auto", metrics=["generation", "likelihood"])
    result = evaluate("builtin:smollm2-135m-instruct", load_eval_data(cfg), cfg)
    m = result["metrics"]["model"]
    assert m["forget.judge_rate"] >= 0.5  # keyword judge: Harry / Hogwarts in the answers
    assert m["retain.judge_rate"] == 0.0
    assert m["retain.ppl"] < 10 and m["forget.nll"] < 4
    assert m["forget.empty_rate"] == 0.0 and m["retain.distinct_1"] > 0.3
    assert result["info"]["eval_cost"]["wall_s"] > 0  # its speed: `unlearn perf`, not a test
