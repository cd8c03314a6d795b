"""`accelerate launch --multi_gpu --num_processes 2` on a CPU-only machine (torchrun, gloo) gives the
single-process loss curve."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.tiny import tiny_run_config

from lm_unlearn.engine import read_history, train


def test_two_cpu_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_model_dir):
    settings = {"train.max_steps": 3, "train.mode": "lora", "train.lr": 0.05}
    single = tiny_run_config(tmp_path / "one", tiny_model_dir, **settings, **{"train.batch_size": 4})
    one = train(single, Path(single.output_dir) / "tiny").history

    double = tiny_run_config(tmp_path / "two", tiny_model_dir, **settings, **{"train.batch_size": 2})
    config = tmp_path / "two" / "run.yaml"
    config.write_text(yaml.safe_dump(double.model_dump(mode="json")))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "29517",
            "-m",
            "lm_unlearn.cli",
            "run",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = read_history(Path(double.output_dir) / "tiny" / "metrics.jsonl")
    assert len(two) == len(one) == 3
    for a, b in zip(one, two):
        assert b["tokens"] == a["tokens"]
        for key in ("loss", "ga", "mismatch", "kl", "forget_nll"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (key, a, b)
