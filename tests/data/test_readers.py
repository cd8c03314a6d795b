"""Hostile or broken data files give one-line DataErrors naming the file, never tracebacks;
`limit` stops reading early; a byte-order mark is skipped."""

import json

import pytest
from typer.testing import CliRunner

from lm_unlearn.cli import app
from lm_unlearn.config import DatasetConfig
from lm_unlearn.data import read_records
from lm_unlearn.data.readers import read_rows
from lm_unlearn.errors import DataError

GOOD = '{"prompt": "Q?", "response": "A."}\n'


@pytest.mark.parametrize("suffix", ["jsonl", "json", "csv"])
def test_non_utf8_file_names_the_file_and_line(tmp_path, suffix):
    path = tmp_path / f"latin1.{suffix}"
    body = {"jsonl": GOOD + '{"prompt": "caf\xe9", "response": "x"}\n', "json": '[{"prompt": "caf\xe9"}]'}
    path.write_bytes(body.get(suffix, "prompt,response\nQ,caf\xe9\n").encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_records(DatasetConfig(path=str(path)))
    message = str(info.value)
    assert str(path) in message and "not UTF-8" in message and "0xe9" in message and "\n" not in message
    if suffix != "csv":
        assert ("line 2" if suffix == "jsonl" else "line 1") in message


def test_binary_file_through_the_cli(tmp_path):
    path = tmp_path / "model.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # a PNG under a .jsonl name
    result = CliRunner().invoke(app, ["data", "convert", "tofu", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "model.jsonl: line 1 is not UTF-8" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_deeply_nested_json_is_a_clean_error(tmp_path, suffix):
    path = tmp_path / f"deep.{suffix}"
    path.write_text("[" * 200_000 + "]" * 200_000 + "\n")
    with pytest.raises(DataError, match="nested too deeply") as info:
        read_rows(path)
    assert str(path) in str(info.value)


def test_csv_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("prompt,response\nWhat is X?,X is Paris.\n".encode("utf-8-sig"))
    (record,) = read_records(DatasetConfig(path=str(path)))
    assert (record.prompt, record.response) == ("What is X?", "X is Paris.")


def test_limit_stops_reading_jsonl_and_csv(tmp_path):
    # Line 3 is broken: with limit=2 the reader must never reach it.
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_text(GOOD * 2 + "{broken\n")
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("prompt,response\nQ1,A1\nQ2,A2\nQ3\n")
    for path in (jsonl, csv_path):
        assert len(read_records(DatasetConfig(path=str(path), limit=2))) == 2
        with pytest.raises(DataError, match="line 4|line 3"):
            read_records(DatasetConfig(path=str(path)))


def test_huge_values_are_cut_in_messages(tmp_path):
    path = tmp_path / "pku.jsonl"
    row = {"prompt": "P", "response_0": "a", "response_1": "b", "is_response_0_safe": "x" * 1_000_000}
    row |= {f"extra_field_{i}_" + "y" * 500: 1 for i in range(100)}
    path.write_text(json.dumps(row | {"is_response_1_safe": True}) + "\n")
    with pytest.raises(DataError) as info:
        from lm_unlearn.data.formats import convert

        convert("pku-saferlhf", path, tmp_path / "out")
    assert "is_response_0_safe" in str(info.value) and len(str(info.value)) < 500
    missing = tmp_path / "wide.jsonl"
    missing.write_text(json.dumps({k: 1 for k in row if k.startswith("extra")}) + "\n")
    with pytest.raises(DataError, match="more") as info:
        read_records(DatasetConfig(path=str(missing)))
    assert len(str(info.value)) < 2000


def test_truncated_json_array_reports_line_and_column(tmp_path):
    path = tmp_path / "forget10.json"
    path.write_text('[\n  {"question": "Q1?", "answer": "A1."},\n  {"question": "Q2?", "ans')
    with pytest.raises(DataError) as info:
        read_rows(path)
    message = str(info.value)
    assert "not valid JSON" in message and "line 3 column" in message and "is not valid JSON" not in message


def test_json_lines_under_json_name_still_report_the_bad_line(tmp_path):
    path = tmp_path / "forget10.json"
    path.write_text('{"question": "Q1?", "answer": "A1."}\n{"question": "Q2?"\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_rows(path)


def test_short_csv_row_says_how_many_columns(tmp_path):
    path = tmp_path / "TruthfulQA.csv"
    path.write_text(
        "Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers\n"
        "Adversarial,Misconceptions,Why?,Because,Because; As said,No\n"
        "Adversarial,Misconceptions,When?,Now\n"
    )
    with pytest.raises(DataError) as info:
        read_rows(path)
    message = str(info.value)
    assert "line 3 has 4 of the header's 6 columns" in message and "missing field" not in message
