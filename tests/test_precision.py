"""precision: auto picks bf16 only on hardware with fast bf16 matmuls, and says why."""

import logging

import pytest

from lm_unlearn import precision


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)


def test_auto_picks_fp32_on_a_cpu_without_bf16_instructions_and_logs_why(monkeypatch, cpu_only, caplog):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    with caplog.at_level(logging.INFO, logger="lm_unlearn.precision"):
        assert precision.resolve_precision("auto", "training") == "fp32"
    assert "training precision: fp32" in caplog.text
    assert "no bf16 matrix instructions" in caplog.text


def test_auto_picks_bf16_on_a_cpu_with_avx512_bf16_and_names_the_flag(monkeypatch, cpu_only):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    chosen, reason = precision.choose_precision("auto")
    assert chosen == "bf16" and "avx512_bf16" in reason


def test_an_explicit_precision_is_kept(monkeypatch, cpu_only):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    assert precision.choose_precision("bf16") == ("bf16", "set explicitly")


def test_cpu_flags_are_read_as_whole_words(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("flags\t: fpu avx2 avx512_bf16x amx_tile\n")  # neither flag, as whole words
    monkeypatch.setattr(precision, "Path", lambda _: fake)
    assert precision.cpu_bf16_flags() == []
