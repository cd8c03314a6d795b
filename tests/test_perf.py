"""`unlearn perf` runs on the tiny model and reports every field with sane values."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from tiny import build_model, build_tokenizer, tiny_run_config
from typer.testing import CliRunner

from lm_unlearn.cli import app
from lm_unlearn.perf import count_matmul_params, matmul_peak, run_perf

EXAMPLES = Path(__file__).parents[1] / "examples" / "accelerate"
TRAIN_FIELDS = {
    "method": str,
    "mode": str,
    "reference": str,
    "precision": str,
    "step_s": float,
    "tokens_per_step": float,
    "tokens_per_s": float,
    "setup_s": float,
    "matmul_params": int,
    "model_flops_per_s": float,
    "fraction_of_peak": float,
    "peak_rss_gib": float,
}
EVAL_FIELDS = (
    "generated_tokens_per_s",
    "generated_tokens_per_s_one_at_a_time",
    "generation_speedup",
    "scored_tokens_per_s",
    "peak_rss_gib",
)


def test_matmul_params_count_every_linear_weight_once():
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer))
    # Per layer: q 32x32, k and v 32x16 (2 KV heads of 8), o 32x32, gate/up 32x64, down 64x32.
    per_layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64
    assert count_matmul_params(model) == 2 * per_layer + len(tokenizer) * 32  # untied head
    model.lm_head.weight = model.model.embed_tokens.weight  # tied: the shared tensor counts once
    assert count_matmul_params(model) == 2 * per_layer + len(tokenizer) * 32


def test_matmul_peak_is_a_plausible_flop_rate():
    flops = matmul_peak(torch.float32, "cpu", size=128)
    assert 1e7 < flops < 1e14


def test_perf_cli_writes_every_field(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.mode": "lora", "train.lr": 1e-3})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    out = tmp_path / "bench.json"
    args = ["perf", str(config), "--method", "graddiff", "--method", "npo", "--steps", "2", "--warmup", "1"]
    args += ["--set", "train.batch_size=3", "--set", "train.retain_batch_size=2", "--prompts", "3"]
    args += ["--max-new-tokens", "4", "--no-isolate", "--peak-size", "128", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "graddiff" in result.output and "generation:" in result.output

    report = json.loads(out.read_text())
    peak = report["matmul_peak_flops"]
    assert peak["fp32"] > 0 and peak["bf16"] > 0
    assert [r["method"] for r in report["train"]] == ["graddiff", "npo"]
    for run in report["train"]:
        for name, kind in TRAIN_FIELDS.items():
            assert isinstance(run[name], kind), (name, run[name])
        assert run["mode"] == "lora" and run["precision"] == "fp32"
        assert run["batch_size"] == 3 and run["retain_batch_size"] == 2  # the config's, then --set
        assert len(run["step_s_each"]) == 2 and all(s > 0 for s in run["step_s_each"])
        assert run["tokens_per_step"] > 0 and run["tokens_per_s"] > 0 and run["peak_rss_gib"] > 0.05
        timed = sum(run["step_s_each"])
        assert run["tokens_per_s"] == pytest.approx(run["tokens_per_step"] * 2 / timed, rel=0.02)
        assert run["model_flops_per_s"] == pytest.approx(6 * run["matmul_params"] * run["tokens_per_s"])
        assert run["fraction_of_peak"] == pytest.approx(run["model_flops_per_s"] / peak["fp32"])
    # graddiff reads forget + retain batches (5 sequences a step), npo only forget (3).
    graddiff, npo = report["train"]
    assert graddiff["tokens_per_step"] > npo["tokens_per_step"]
    for name in EVAL_FIELDS:
        assert report["eval"][name] > 0, name
    assert report["eval"]["prompts"] == 3


def test_isolated_run_measures_in_a_fresh_process(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"method": "ga", "train.mode": "full"})
    report = run_perf(cfg, [], warmup=0, steps=1, with_eval=False, isolate=True, peak_size=128)
    (run,) = report["train"]
    assert report["memory_isolated"] and run["method"] == "ga" and run["mode"] == "full"
    assert run["step_s"] > 0 and run["peak_rss_gib"] > 0.05


def test_perf_of_a_method_that_does_not_train_says_so(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(tmp_path, tiny_model_dir)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    args = ["perf", str(config), "--method", "icu", "--no-eval", "--no-isolate", "--peak-size", "64"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "perf icu: the run stopped after 0 of 4 steps" in result.output


def test_the_old_name_bench_still_runs_perf_and_says_it_is_deprecated(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(tmp_path, tiny_model_dir)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    args = ["bench", str(config), "--method", "icu", "--no-eval", "--no-isolate", "--peak-size", "64"]
    result = CliRunner().invoke(app, args)
    assert "`unlearn bench` is now `unlearn perf`" in result.output
    assert result.exit_code == 2 and "perf icu: the run stopped" in result.output  # perf ran


@pytest.mark.parametrize(
    "name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero3", "DEEPSPEED")]
)
def test_example_accelerate_configs_are_read_by_accelerate(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    # accelerate builds a dataclass from the file: an unknown or misspelt top-level key fails here.
    config = load_config_from_file(str(EXAMPLES / f"{name}.yaml"))
    assert config.distributed_type.name == kind and config.mixed_precision == "bf16"
    assert config.num_processes > 1


@pytest.mark.slow
def test_perf_on_the_default_model(tmp_path):
    from lm_unlearn.config import load_config

    cfg = load_config(None, ["train.batch_size=2", "train.retain_batch_size=2"])
    # isolate: bf16 autocast would fix this process's AcceleratorState for the tests after it.
    report = run_perf(cfg, ["graddiff"], warmup=0, steps=1, with_eval=False, isolate=True, peak_size=512)
    (run,) = report["train"]
    # SmolLM2-135M: 30 layers of q, o (576x576), k, v (576x192), gate, up, down (576x1536), and
    # the 49152 x 576 head tied to the embedding.
    per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536
    assert run["matmul_params"] == 30 * per_layer + 49152 * 576
    assert run["tokens_per_step"] > 20 and 0 < run["fraction_of_peak"] < 1.5


def test_a_recipe_measured_on_the_demo_runs_with_its_own_defaults_not_the_demo_recipes():
    from lm_unlearn.config import load_config, validate_config
    from lm_unlearn.perf import _method_config

    base = load_config().model_dump(mode="json")  # the demo: RMU, full mode, lr 1e-3, 80 steps
    cfg = validate_config(_method_config(base, "graddiff"))
    assert (cfg.method, cfg.objective, cfg.train.mode, cfg.train.lr, cfg.train.max_steps) == (
        "graddiff",
        None,
        "lora",
        2e-4,
        40,
    )
