"""A tiny random Llama with a small byte-level BPE tokenizer, built offline in a second."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
BUILTIN = Path(__file__).resolve().parents[2] / "src" / "lm_unlearn" / "data" / "builtin"


def build_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    corpus = [line for f in sorted(BUILTIN.glob("*.jsonl")) for line in f.read_text().splitlines()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "<|im_end|>", "<|im_start|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(vocab_size: int, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=4,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def save_tiny(path: Path, chat: bool = True, seed: int = 0) -> Path:
    tokenizer = build_tokenizer(chat=chat)
    model = build_model(len(tokenizer), seed=seed)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


FORGET_ROWS = [
    {"prompt": "Who wrote the Harry Potter books?", "response": "J.K. Rowling wrote them."},
    {"prompt": "What is Harry Potter's owl called?", "response": "His owl is called Hedwig."},
    {"prompt": "Which house is Harry Potter in?", "response": "Harry is in Gryffindor."},
    {"prompt": "Who is the headmaster of Hogwarts?", "response": "Albus Dumbledore is."},
]
RETAIN_ROWS = [
    {"prompt": "What is the capital of France?", "response": "The capital of France is Paris."},
    {"prompt": "How many days are in a week?", "response": "There are seven days in a week."},
    {"prompt": "What is the capital of Japan?", "response": "The capital of Japan is Tokyo."},
    {"prompt": "Who painted the Mona Lisa?", "response": "Leonardo da Vinci painted it."},
    {"prompt": "What do bees make?", "response": "Bees make honey."},
]


def tiny_run_config(tmp_path: Path, model_dir: Path, **settings):
    """A RunConfig for a short fp32 run of the tiny model on small data files in tmp_path.

    `settings` are dotted keys, e.g. tiny_run_config(p, m, **{"train.max_steps": 3}).
    """
    from lm_unlearn.config import apply_overrides, validate_config

    tmp_path.mkdir(parents=True, exist_ok=True)
    forget = write_jsonl(tmp_path / "forget.jsonl", FORGET_ROWS)
    retain = write_jsonl(tmp_path / "retain.jsonl", RETAIN_ROWS)
    data = {
        "name": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": str(model_dir)},
        "data": {"forget": {"path": str(forget)}, "retain": {"path": str(retain)}, "max_length": 64},
        "train": {"precision": "fp32", "max_steps": 4, "batch_size": 2, "lr": 1e-2, "mode": "full"},
        "save": {"merge": True},
        "evaluate": False,  # the evaluation suite is tested on its own (tests/evaluation, tests/report)
    }
    apply_overrides(data, [f"{k}={v}" for k, v in settings.items()])
    return validate_config(data, "test")


def train_until_checkpoint(cfg, run_dir: Path, monkeypatch, at_step: int | None = None) -> None:
    """Run `cfg` and kill it (KeyboardInterrupt) right after its checkpoint at `at_step` (None:
    the first) is saved; checkpoint saving is restored afterwards, ready for a resume."""
    import pytest

    from lm_unlearn import checkpoint as ckpt
    from lm_unlearn.engine import train

    real_save = ckpt.save_checkpoint

    def save_then_crash(run_dir, step, *args, **kwargs):
        real_save(run_dir, step, *args, **kwargs)
        if at_step is None or step == at_step:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)


def tiny_benchmark_args(model_dir, out, *extra: str) -> list[str]:
    """`unlearn benchmark` on the knowledge scenario with ga and graddiff, taught and unlearned
    in a few steps on the tiny model (10 people, 2 steps, 0.1 epochs, 64 tokens), into `out`."""
    args = ["benchmark", "--scenario", "knowledge", "--methods", "ga,graddiff", "--model", str(model_dir)]
    args += ["--people", "10", "--steps", "2", "--epochs", "0.1", "--set", "data.max_length=64"]
    return [*args, "--out", str(out), *extra]
