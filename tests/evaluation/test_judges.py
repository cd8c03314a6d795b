import pytest
from support.tiny import build_tokenizer
from transformers import LlamaConfig, LlamaForSequenceClassification

from lm_unlearn.errors import ConfigError
from lm_unlearn.evaluation.config import JudgeConfig
from lm_unlearn.evaluation.judges import ClassifierJudge, HFClassifierJudge, KeywordJudge, build_judge


def test_keyword_judge():
    judge = KeywordJudge([r"(?i)\bhogwarts\b", "Voldemort"])
    assert judge.scores(["He went to hogwarts.", "voldemort", "Paris is in France."]) == [1.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match="not a valid regex"):
        KeywordJudge(["(unclosed"])


def test_classifier_judge_separates_topics():
    positive = [
        "Harry Potter attends Hogwarts School of Witchcraft and Wizardry.",
        "Lord Voldemort killed Harry Potter's parents.",
        "Hermione Granger is a witch at Hogwarts.",
        "Dumbledore is the headmaster of Hogwarts.",
    ]
    negative = [
        "The capital of France is Paris.",
        "Water boils at 100 degrees Celsius.",
        "Jupiter is the largest planet in the solar system.",
        "A triangle has three sides.",
    ]
    judge = ClassifierJudge(positive, negative)
    high, low = judge.scores(
        ["Ron Weasley is Harry's best friend at Hogwarts.", "Tokyo is the capital of Japan."]
    )
    assert high > judge.threshold > low


def test_hf_classifier_judge(tmp_path):
    tok = build_tokenizer(chat=False)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=tok.pad_token_id,
        num_labels=2,
        id2label={0: "ok", 1: "leak"},
        label2id={"ok": 0, "leak": 1},
    )
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    judge = build_judge(JudgeConfig(kind="hf", model=str(tmp_path), label="leak"), [], [])
    assert isinstance(judge, HFClassifierJudge) and judge.index == 1
    scores = judge.scores(["one text", "another, longer text here"])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    with pytest.raises(ConfigError, match="not one of the model's labels"):
        HFClassifierJudge(str(tmp_path), label="toxic")


def test_none_judge_and_missing_settings():
    assert build_judge(JudgeConfig(kind="none"), [], []) is None
    with pytest.raises(ConfigError, match="judge.model"):
        build_judge(JudgeConfig(kind="hf"), [], [])
    with pytest.raises(ConfigError, match="patterns"):
        build_judge(JudgeConfig(kind="keyword"), [], [])
