import json

import pytest
import torch

from lm_unlearn.config import DatasetConfig
from lm_unlearn.data import PromptFormat, Record, collate, encode_records, read_records
from lm_unlearn.data.tokenize import IGNORE, encode
from lm_unlearn.errors import ConfigError, DataError

ROWS = [{"q": "What is X?", "a": "X is Paris."}, {"q": "Who is Y?", "a": "Y is Ada."}]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_each_file_format_reads_the_same_records(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    if fmt == "jsonl":
        write(path, ROWS)
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        path.write_text("q,a\n" + "".join(f'"{r["q"]}","{r["a"]}"\n' for r in ROWS))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    records = read_records(DatasetConfig(path=str(path), prompt_field="q", response_field="a"))
    assert [(r.prompt, r.response) for r in records] == [(r["q"], r["a"]) for r in ROWS]


def test_raw_text_records(tmp_path):
    path = write(tmp_path / "t.jsonl", [{"text": "Some book text."}])
    (record,) = read_records(DatasetConfig(path=str(path)))
    assert record.is_text and record.response == "Some book text."


def test_missing_field_names_file_line_and_field(tmp_path):
    path = write(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c"}])
    with pytest.raises(DataError) as err:
        read_records(DatasetConfig(path=str(path)))
    message = str(err.value)
    assert str(path) in message and "line 2" in message and "'response'" in message


def test_record_without_any_known_field(tmp_path):
    path = write(tmp_path / "d.jsonl", [{"question": "a", "answer": "b"}])
    with pytest.raises(DataError, match="line 1.*prompt_field"):
        read_records(DatasetConfig(path=str(path)))


def test_bad_json_line_and_missing_and_empty_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{oops\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_records(DatasetConfig(path=str(path)))
    with pytest.raises(DataError, match="not found"):
        read_records(DatasetConfig(path=str(tmp_path / "missing.jsonl")), "forget")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="forget set .* has no records"):
        read_records(DatasetConfig(path=str(empty)), "forget")


def _response_text(tokenizer, example):
    ids = [tok for tok, label in zip(example.input_ids, example.labels) if label != IGNORE]
    return tokenizer.decode(ids)


@pytest.mark.parametrize("template", ["chat", "plain"])
def test_labels_cover_exactly_the_response(tiny, template):
    fmt = PromptFormat.choose(tiny.tokenizer, template)
    record = Record("What is the capital of France?", "The capital is Paris.", "t")
    (example,) = encode_records([record], fmt, 128)
    answer = _response_text(tiny.tokenizer, example)
    assert answer.startswith("The capital is Paris.")
    prompt_ids = [t for t, lab in zip(example.input_ids, example.labels) if lab == IGNORE]
    assert "Paris" not in tiny.tokenizer.decode(prompt_ids)
    assert "France" in tiny.tokenizer.decode(prompt_ids)
    # the response ends with the end-of-turn / EOS token, so the model learns to stop
    assert example.labels[-1] != IGNORE


def test_boundary_token_that_straddles_prompt_and_response_counts_as_response(tiny):
    # The plain template ends in "Answer: "; byte-level BPE merges the space into " Paris".
    fmt = PromptFormat.choose(tiny.tokenizer, "plain")
    text, boundary = fmt.render("Where?", "Paris")
    enc = tiny.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    straddling = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if s < boundary < e]
    example = encode(Record("Where?", "Paris", "t"), fmt, 64)
    for i in straddling:
        assert example.labels[i] != IGNORE
    assert _response_text(tiny.tokenizer, example).strip().startswith("Paris")


def test_chat_template_requested_but_missing(tiny_plain_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_plain_model_dir)
    with pytest.raises(ConfigError, match="no chat template"):
        PromptFormat.choose(tokenizer, "chat")
    assert PromptFormat.choose(tokenizer, "auto").kind == "plain"


def test_overlong_examples_truncate_with_warning_or_refuse(tiny, caplog):
    fmt = PromptFormat.choose(tiny.tokenizer, "plain")
    record = Record("Q?", "word " * 200, "file.jsonl: line 7")
    example = encode(record, fmt, 32, "truncate")
    assert len(example.input_ids) == 32
    assert "line 7" in caplog.text
    with pytest.raises(DataError, match="line 7.*max_length=32"):
        encode(record, fmt, 32, "error")
    long_prompt = Record("word " * 200, "short", "file.jsonl: line 8")
    with pytest.raises(DataError, match="line 8: no response tokens"):
        encode(long_prompt, fmt, 32, "truncate")


def test_collate_masks_padding_by_position_not_by_id(tiny):
    fmt = PromptFormat.choose(tiny.tokenizer, "chat")
    examples = encode_records(
        [Record("Hi?", "Yes.", "a"), Record("A much longer question here?", "A longer answer.", "b")],
        fmt,
        64,
    )
    # Use a pad id that also occurs inside the sequences (EOS, as many tokenizers do).
    pad = tiny.tokenizer.eos_token_id
    batch = collate(examples, pad_id=pad, padding_side="right")
    lengths = [len(e.input_ids) for e in examples]
    assert batch.attention_mask.sum(1).tolist() == lengths
    assert (batch.input_ids[0, : lengths[0]] == pad).any()  # real EOS tokens stay attended
    assert batch.labels[0, lengths[0] :].eq(IGNORE).all()
    left = collate(examples, pad_id=pad, padding_side="left")
    assert left.attention_mask[0, -lengths[0] :].all() and not left.attention_mask[0, 0]
    assert torch.equal(left.input_ids[1], batch.input_ids[1])


def test_datasets_name_path_loads_through_the_datasets_library(tmp_path):
    # A user with a network passes a hub id; offline, the same code path loads a local folder.
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write(folder / "train.jsonl", ROWS)
    records = read_records(
        DatasetConfig(path=f"hf:{folder}", split="train", prompt_field="q", response_field="a")
    )
    assert [r.prompt for r in records] == [r["q"] for r in ROWS]
    assert records[1].source.endswith("record 1")


def test_prompt_prefix_wraps_questions_not_raw_text(tiny):
    from lm_unlearn.data import PromptFormat

    plain = PromptFormat.choose(tiny.tokenizer, "plain").with_prefix("Refuse.\nQ: ")
    assert plain.prompt_text("Who?") == "### Question: Refuse.\nQ: Who?\n### Answer: "
    assert plain.render("", "raw text") == ("raw text", 0)
    chat = PromptFormat.choose(tiny.tokenizer, "chat").with_prefix("Refuse.\nQ: ")
    text, start = chat.render("Who?", "Nobody.")
    assert "Refuse.\nQ: Who?" in text[:start] and text[start:].startswith("Nobody.")
