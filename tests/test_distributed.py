"""Two processes on a CPU-only machine (torchrun, gloo) give the single-process run: DDP
(`accelerate launch --multi_gpu`) and FSDP2 (examples/accelerate/fsdp.yaml, set to CPU)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from support.tiny import tiny_run_config

from lm_unlearn.engine import read_history, train

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("loss", "ga", "mismatch", "kl", "forget_nll")


def launch(port: int, args: list[str], config_file: Path | None = None) -> str:
    """`accelerate launch` two processes of `unlearn run ARGS`; their stderr, or a failure with it."""
    where = ["--config_file", str(config_file)] if config_file else ["--multi_gpu", "--num_processes", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", *where]
        + ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        + ["--main_process_port", str(port), "-m", "lm_unlearn.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def write_config(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def fsdp_on_cpu(tmp_path: Path) -> Path:
    """The repository's FSDP example, for two CPU processes in fp32."""
    fsdp = yaml.safe_load((ROOT / "examples" / "accelerate" / "fsdp.yaml").read_text())
    fsdp.update(num_processes=2, mixed_precision="no", use_cpu=True)
    path = tmp_path / "fsdp_cpu.yaml"
    path.write_text(yaml.safe_dump(fsdp))
    return path


def assert_same_history(one: list[dict], two: list[dict], steps: int) -> None:
    assert len(two) == len(one) == steps
    for a, b in zip(one, two):
        assert b["tokens"] == a["tokens"]
        for key in (*LOSSES, "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (key, a, b)


def assert_same_weights(one: Path, two: Path) -> None:
    a, b = load_file(str(one)), load_file(str(two))
    assert sorted(a) == sorted(b)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-4, msg=name)


def test_two_cpu_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_model_dir):
    settings = {"train.max_steps": 3, "train.mode": "lora", "train.lr": 0.05}
    single = tiny_run_config(tmp_path / "one", tiny_model_dir, **settings, **{"train.batch_size": 4})
    one = train(single, Path(single.output_dir) / "tiny").history

    double = tiny_run_config(tmp_path / "two", tiny_model_dir, **settings, **{"train.batch_size": 2})
    launch(29517, [str(write_config(double, tmp_path / "two" / "run.yaml"))])
    two = read_history(Path(double.output_dir) / "tiny" / "metrics.jsonl")
    assert len(two) == len(one) == 3
    for a, b in zip(one, two):
        assert b["tokens"] == a["tokens"]
        for key in LOSSES:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (key, a, b)


def test_fsdp_on_two_cpu_processes_matches_one_process_with_a_mask_and_a_resume(tmp_path, tiny_model_dir):
    """Full fine-tuning of decoder layer 1 only, sharded over two gloo processes; the run is
    interrupted after its step-2 checkpoint (sharded weights and AdamW moments, gathered) and
    resumed, and still ends where one process ends."""
    settings = {"train.max_steps": 4, "train.mode": "full", "train.lr": 0.05, "train.checkpoint_every": 2}
    settings["train.mask.layers"] = "[1]"
    single = tiny_run_config(tmp_path / "one", tiny_model_dir, **settings, **{"train.batch_size": 4})
    one = train(single, Path(single.output_dir) / "tiny").history

    double = tiny_run_config(tmp_path / "two", tiny_model_dir, **settings, **{"train.batch_size": 2})
    log = launch(29518, [str(write_config(double, tmp_path / "two" / "run.yaml"))], fsdp_on_cpu(tmp_path))
    assert "sharding with torch's fully_shard (FSDP2) over gloo" in log  # not accelerate's DDP fallback
    run_dir = Path(double.output_dir) / "tiny"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["mask"]["entries"] == 9280
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-000002"]
    # As if it had been stopped right after the checkpoint: unfinished, no outputs yet.
    manifest["status"] = "running"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(run_dir / "model")
    launch(29519, ["--resume", str(run_dir)], fsdp_on_cpu(tmp_path))

    assert json.loads((run_dir / "manifest.json").read_text())["resumed_at"][0]["step"] == 2
    assert_same_history(one, read_history(run_dir / "metrics.jsonl"), 4)
    weights = "model/model.safetensors"
    assert_same_weights(Path(single.output_dir) / "tiny" / weights, run_dir / weights)
    before, after = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(run_dir / weights))
    frozen, trained = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"
    assert torch.equal(after[frozen], before[frozen]) and not torch.equal(after[trained], before[trained])


def test_fsdp_lora_on_two_cpu_processes_matches_one_process_and_merges(tmp_path, tiny_model_dir):
    """LoRA adapters sharded with the frozen base; the saved adapter and the merged model (the
    source reloaded and merged with the gathered adapter) equal one process's."""
    settings = {"train.max_steps": 3, "train.mode": "lora", "train.lr": 0.05}
    single = tiny_run_config(tmp_path / "one", tiny_model_dir, **settings, **{"train.batch_size": 4})
    one = train(single, Path(single.output_dir) / "tiny").history

    double = tiny_run_config(tmp_path / "two", tiny_model_dir, **settings, **{"train.batch_size": 2})
    log = launch(29520, [str(write_config(double, tmp_path / "two" / "run.yaml"))], fsdp_on_cpu(tmp_path))
    assert "sharding with torch's fully_shard (FSDP2) over gloo" in log
    run_dir = Path(double.output_dir) / "tiny"
    assert_same_history(one, read_history(run_dir / "metrics.jsonl"), 3)
    for weights in ("adapter/adapter_model.safetensors", "model/model.safetensors"):
        assert_same_weights(Path(single.output_dir) / "tiny" / weights, run_dir / weights)
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]  # not FSDP's wrapper class
