"""`unlearn perf` runs on the tiny model and reports every field with sane values."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from support.tiny import build_model, build_tokenizer, tiny_run_config
from typer.testing import CliRunner

from lm_unlearn.cli import app
from lm_unlearn.errors import UnlearnError
from lm_unlearn.perf import (
    count_matmul_params,
    fraction_of_peak,
    matmul_peak,
    paired_median_speedup,
    run_perf,
)

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
    "flops_per_step": float,
    "flops_per_s": float,
    "fraction_of_peak": float,
    "peak_rss_gib": float,
    "baseline_speedup": float,
    "baseline_speedup_median": float,
    "baseline_speedup_floor": float,
    "baseline_memory_ratio": float,
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
    assert peak["fp32"] > 0 and "bf16" not in peak  # an fp32 run: bf16's peak is not measured
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
        assert len(run["flops_per_step_each"]) == 2 and all(f > 0 for f in run["flops_per_step_each"])
        assert run["flops_per_s"] == pytest.approx(sum(run["flops_per_step_each"]) / timed, rel=0.02)
        assert run["fraction_of_peak"] == pytest.approx(run["flops_per_s"] / peak["fp32"])
        assert 0 < run["fraction_of_peak"] <= 1
        # The stock step ran on the same tokens, for as many timed steps, with our thread count.
        stock = run["baseline"]
        assert stock["mode"] == "full" and stock["tokens_per_step"] == run["tokens_per_step"]
        assert len(stock["step_s_each"]) == 2 and stock["torch_threads"] == run["torch_threads"]
        for ratio in ("baseline_speedup", "baseline_memory_ratio"):
            assert math.isfinite(run[ratio]) and run[ratio] > 0, (ratio, run[ratio])
        assert run["baseline_speedup"] == pytest.approx(run["tokens_per_s"] / stock["tokens_per_s"])
        paired = sorted(s / o for s, o in zip(stock["step_s_each"], run["step_s_each"]))
        assert run["baseline_speedup_median"] == pytest.approx((paired[0] + paired[1]) / 2)
        ours_median = sum(run["step_s_each"]) / 2  # the median of two
        assert run["baseline_speedup_floor"] == pytest.approx(min(stock["step_s_each"]) / ours_median)
        assert run["baseline_memory_ratio"] == pytest.approx(run["peak_rss_gib"] / stock["peak_rss_gib"])
    # graddiff reads forget + retain batches (5 sequences a step), npo only forget (3).
    graddiff, npo = report["train"]
    assert graddiff["tokens_per_step"] > npo["tokens_per_step"]
    assert "stock tok/s" in result.output and "speedup" in result.output
    for name in EVAL_FIELDS:
        assert report["eval"][name] > 0, name
    assert report["eval"]["prompts"] == 3


def test_a_fraction_of_peak_above_one_is_an_error_not_a_figure():
    peak = {"fp32": 100e9, "bf16": 400e9}
    run = {"method": "graddiff", "precision": "fp32", "flops_per_s": 50e9}
    assert fraction_of_peak(run, peak) == 0.5
    assert fraction_of_peak(dict(run, precision="bf16", flops_per_s=200e9), peak) == 0.5  # its own peak
    with pytest.raises(UnlearnError, match=r"graddiff: 138.0 GFLOP/s .* fp32 matmul peak of 100.0 .* 138 %"):
        fraction_of_peak(dict(run, flops_per_s=138e9), peak)


def test_the_median_speedup_pairs_steps_and_ignores_one_stray_slow_stock_step():
    ours = [1.0, 1.0, 2.0, 1.0, 1.0]  # step 2 is a longer batch on both sides
    stock = [2.0, 2.1, 4.0, 6.0, 1.9]  # step 3 is a stray slow stock step
    # ratios 2.0, 2.1, 2.0, 6.0, 1.9 -> median 2.0; mean rates give 16.0 / 6.0 = 2.67
    assert paired_median_speedup(stock, ours) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        paired_median_speedup(stock, ours[:-1])


def test_isolated_run_measures_in_a_fresh_process(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"method": "ga", "train.mode": "full"})
    report = run_perf(cfg, [], warmup=0, steps=1, with_eval=False, isolate=True, peak_size=128)
    (run,) = report["train"]
    assert report["memory_isolated"] and run["method"] == "ga" and run["mode"] == "full"
    assert run["step_s"] > 0 and run["peak_rss_gib"] > 0.05
    assert run["baseline"]["peak_rss_gib"] > 0.05 and run["baseline_memory_ratio"] > 0  # its own process


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
    assert run["tokens_per_step"] > 20 and 0 < run["fraction_of_peak"] <= 1
    assert run["baseline_speedup"] > 0 and run["baseline_memory_ratio"] > 0


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


def test_the_stock_step_runs_our_loss_from_full_logits_called_with_labels(tiny_model_dir):
    import copy

    from support.tiny import FORGET_ROWS

    from lm_unlearn.data import PromptFormat, Record, encode_records
    from lm_unlearn.data.sampling import StepData
    from lm_unlearn.models import load_model
    from lm_unlearn.objectives import StepContext, build_objective
    from lm_unlearn.objectives.reference import LiveReference
    from lm_unlearn.perf_baseline import StockContext

    loaded = load_model(str(tiny_model_dir))
    model, fmt = loaded.model, PromptFormat.choose(loaded.tokenizer, "auto")
    forget = [Record(r["prompt"], r["response"], f"forget:{i}") for i, r in enumerate(FORGET_ROWS)]
    data = StepData(encode_records(forget, fmt, 64), forget, None, None, fmt, 2, 2, 64, 0)
    reference = LiveReference(copy.deepcopy(model).eval().requires_grad_(False))
    calls = []
    model.register_forward_pre_hook(lambda _m, _a, kwargs: calls.append(sorted(kwargs)), with_kwargs=True)
    npo = build_objective("npo", None)
    stock = StockContext(model, lambda split: data.batch(split, 0), reference)
    ours = StepContext(model, lambda split: data.batch(split, 0), reference)
    stock_loss, ours_loss = npo(stock)[0], npo(ours)[0]
    assert calls == [
        ["attention_mask", "input_ids", "labels"],
        ["attention_mask", "input_ids", "logits_to_keep"],
    ]
    rows_by_width = tuple(data.batch("forget", 0).input_ids.shape)
    assert stock.outputs("forget").positions is None  # the head ran on every position
    assert tuple(stock.outputs("forget").logits.shape[:2]) == rows_by_width
    assert tuple(stock.reference("forget")._logits.shape[:2]) == rows_by_width
    assert ours.reference("forget").positions is not None  # ours asks the reference for fewer
    torch.testing.assert_close(stock_loss, ours_loss)  # the same method, done another way


def test_a_train_setting_set_on_the_demo_outranks_the_recipes_defaults():
    from lm_unlearn.config import load_config, validate_config
    from lm_unlearn.perf import _method_config

    overrides = ["train.mode=full", "train.batch_size=4"]
    base = load_config(None, overrides).model_dump(mode="json")
    cfg = validate_config(_method_config(base, "npo", overrides))
    assert (cfg.method, cfg.train.mode, cfg.train.lr, cfg.train.batch_size) == ("npo", "full", 2e-4, 4)
