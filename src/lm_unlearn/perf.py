"""`unlearn perf`: how fast and how lean unlearning and evaluation run on this machine.

Training numbers come from the product's own loop: each method runs through `api.unlearn` for a few
warm-up and timed steps, and step time and tokens are read from the run's metrics.jsonl. Each
measurement runs in a fresh process (unless isolate=False), so its peak resident memory is that
run's alone. The machine's matmul peak is measured in the same invocation, before and after the
methods, so the achieved fraction of it stays meaningful on a loaded or throttled machine.

FLOPs are counted, not estimated: torch's FlopCounterMode counts the matmuls (and attention) of
each timed step as it runs, in a second set-up of the same run on the same batches
(`count_step_flops`). So every module counts at the positions where it runs (the LM head only
where the run asks for logits), backward only the gradients the run computes (no weight
gradients for LoRA's frozen base), live reference forwards are included, and an embedding
lookup is not a matmul. fraction_of_peak = counted FLOP/s / the matmul peak, and never above 1.

With `baseline` (the default) each method is also run the stock way (`perf_baseline`) on the
same batches, and our tokens/s and peak memory are reported as ratios to it.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from lm_unlearn.config import RunConfig, apply_overrides, validate_config
from lm_unlearn.errors import ConfigError, DataError, UnlearnError
from lm_unlearn.rundir import read_manifest

GIB = 2**30
Shape = tuple[int, ...]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: str | torch.device = "cpu", size: int | None = None) -> float:
    """Best observed FLOP/s of a square matmul (2 * size^3 FLOPs each) in `dtype` on `device`.

    The best of five ~0.25 s windows: on a shared machine the best window is the closest to
    what the hardware can do, and the training step is measured under the same conditions.
    """
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    best = 0.0
    for _ in range(5):
        start, count = time.perf_counter(), 0
        while True:
            a @ b
            count += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed > 0.25:
                break
        best = max(best, 2 * size**3 * count / elapsed)
    return best


def _cpu_attention(q: Shape, k: Shape, v: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return sdpa_flop_count(q, k, v)


def _cpu_attention_backward(
    grad: Shape, q: Shape, k: Shape, v: Shape, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    return sdpa_backward_flop_count(grad, q, k, v)


# FlopCounterMode has formulas for the CUDA attention kernels but not for the CPU one that
# F.scaled_dot_product_attention runs on CPU; without these its matmuls would go uncounted.
CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def flop_counter() -> FlopCounterMode:
    """torch's FlopCounterMode (matmuls, attention and convolutions as they run), CPU attention included."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION)


def count_step_flops(cfg: RunConfig, run_dir: Path, steps: range) -> list[int]:
    """FLOPs of each optimizer step in `steps`, counted by FlopCounterMode in another set-up of
    the same run: the same code path on the same batches (a pure function of the seed and the
    micro-step), so each module counts at the positions where it runs, backward computes only
    the gradients the run needs (no weight gradients for LoRA's frozen base) and live reference
    forwards are in. The optimizer update and gradient clipping have no matmuls; the weights are
    not updated here, which changes no shape. A precomputed reference's forwards are set-up."""
    from lm_unlearn.engine import micro_steps, setup

    state = setup(cfg, run_dir)
    counts = []
    for step in steps:
        with flop_counter() as counter:
            micro_steps(state, step)
        state.optimizer.zero_grad(set_to_none=True)
        counts.append(counter.get_total_flops())
    return counts


def count_matmul_params(model: torch.nn.Module) -> int:
    """Weights of every nn.Linear (each tensor once, so a tied head counts once)."""
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            total += module.weight.numel()
    return total


def matmul_params_of(model_dir: str | Path) -> int:
    """count_matmul_params of a saved model, built on the meta device (no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return count_matmul_params(model)


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (GiB), and peak GPU memory allocated on a GPU."""
    out = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}
    if device.type == "cuda":
        out["peak_gpu_allocated_gib"] = torch.cuda.max_memory_allocated(device) / GIB
    return out


def perf_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def perf_config(cfg_data: dict[str, Any], warmup: int, steps: int, workdir: str) -> RunConfig:
    """The run `perf` measures: warmup + steps optimizer steps, no checkpoints, no validation."""
    data = json.loads(json.dumps(cfg_data))  # a private copy
    apply_overrides(
        data,
        [
            f"train.max_steps={warmup + steps}",
            "train.checkpoint_every=0",
            "train.eval_every=0",  # training speed alone: no validation, so no target either
            "train.target={}",
            f"output_dir={workdir}",
            f"name=perf-{data.get('method') or 'custom'}",
        ],
    )
    return validate_config(data, "perf")


def _start_measurement(
    cfg_data: dict[str, Any], warmup: int, steps: int, workdir: str, threads: int | None
) -> tuple[torch.device, RunConfig]:
    """What ours and the stock step share in their process: the thread count, a fresh GPU
    peak, and the config that perf measures."""
    if threads:
        torch.set_num_threads(threads)
    device = perf_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return device, perf_config(cfg_data, warmup, steps, workdir)


def perf_method(
    cfg_data: dict[str, Any], warmup: int, steps: int, workdir: str, threads: int | None = None
) -> dict[str, Any]:
    """Run `api.unlearn` for warmup + steps steps; time the last `steps` from metrics.jsonl,
    then count their FLOPs (`count_step_flops`)."""
    from lm_unlearn.api import unlearn
    from lm_unlearn.objectives import build_objective
    from lm_unlearn.objectives.reference import reference_mode
    from lm_unlearn.precision import resolve_precision

    device, cfg = _start_measurement(cfg_data, warmup, steps, workdir, threads)
    run_dir = Path(cfg.output_dir) / str(cfg.name)
    started = time.perf_counter()
    result = unlearn(cfg, run_dir)
    total_s = time.perf_counter() - started
    memory = peak_memory(device)  # before the count below allocates anything
    rows = result.history
    if len(rows) < warmup + steps:
        raise UnlearnError(
            f"perf {cfg.method}: the run stopped after {len(rows)} of {warmup + steps} steps "
            f"({result.stop_reason}); measure a method that trains, or lower --steps"
        )
    elapsed = [0.0] + [r["elapsed_s"] for r in rows]
    step_times = [elapsed[i + 1] - elapsed[i] for i in range(warmup, warmup + steps)]
    timed_s = elapsed[warmup + steps] - elapsed[warmup]
    tokens = sum(r["tokens"] for r in rows[warmup : warmup + steps])
    flops = count_step_flops(cfg, run_dir.with_name(run_dir.name + "-count"), range(warmup, warmup + steps))
    manifest = read_manifest(run_dir)
    return {
        "method": cfg.method or "custom",
        "objective": manifest.objective,
        "mode": cfg.train.mode,
        "reference": reference_mode(cfg.train.reference, build_objective(cfg.method, cfg.objective)),
        "precision": resolve_precision(cfg.train.precision),
        "gradient_checkpointing": cfg.train.gradient_checkpointing,
        "batch_size": cfg.train.batch_size,
        "retain_batch_size": cfg.train.retain_batch_size or cfg.train.batch_size,
        "torch_threads": torch.get_num_threads(),
        "warmup_steps": warmup,
        "timed_steps": steps,
        "step_s": statistics.median(step_times),
        "step_s_each": [round(s, 4) for s in step_times],
        "tokens_per_step": tokens / steps,
        "tokens_per_s": tokens / timed_s,
        "setup_s": total_s - elapsed[-1],  # load, reference precompute, saving: outside the steps
        "matmul_params": matmul_params_of(manifest.source_model["path"]),
        "flops_per_step": sum(flops) / steps,
        "flops_per_step_each": flops,
        "flops_per_s": sum(flops) / timed_s,
        **memory,
    }


def perf_eval(cfg_data: dict[str, Any], prompts: int, max_new_tokens: int, batch_size: int) -> dict[str, Any]:
    """Greedy generation (batched, and one prompt at a time) and scoring throughput."""
    from lm_unlearn.data import PromptFormat, read_records
    from lm_unlearn.evaluation.generation import generate
    from lm_unlearn.evaluation.likelihood import score_records
    from lm_unlearn.models import load_model
    from lm_unlearn.precision import resolve_precision
    from lm_unlearn.training_setup import datasets as _datasets

    device = perf_device()
    cfg = validate_config(json.loads(json.dumps(cfg_data)), "perf")
    precision = resolve_precision(cfg.train.precision)
    loaded = load_model(
        cfg.model.name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
    )
    model, tokenizer = loaded.model.to(device), loaded.tokenizer
    fmt = PromptFormat.choose(tokenizer, cfg.model.template, cfg.model.system_prompt)
    forget_cfg, _ = _datasets(cfg)
    records = [r for r in read_records(forget_cfg, "forget") if r.prompt][:prompts]
    if not records:
        raise DataError(f"{forget_cfg.path}: no prompt/response records to generate from; use --no-eval")
    inputs = [fmt.prompt_text(r.prompt) for r in records]
    special = fmt.kind != "chat"
    prompt_tokens = sum(len(tokenizer(t, add_special_tokens=special)["input_ids"]) for t in inputs)

    def timed_generation(size: int) -> tuple[float, int]:
        generate(
            model,
            tokenizer,
            inputs[:size],
            add_special_tokens=special,
            max_new_tokens=4,
            batch_size=size,
            precision=precision,
        )  # warm-up
        _sync(device)
        start = time.perf_counter()
        out = generate(
            model,
            tokenizer,
            inputs,
            add_special_tokens=special,
            max_new_tokens=max_new_tokens,
            batch_size=size,
            precision=precision,
        )
        _sync(device)
        return time.perf_counter() - start, out.tokens - prompt_tokens

    batched_s, batched_new = timed_generation(batch_size)
    single_s, single_new = timed_generation(1)
    score_records(model, fmt, records[:2], max_length=cfg.data.max_length, batch_size=2, precision=precision)
    start = time.perf_counter()
    scores = score_records(
        model,
        fmt,
        records,
        max_length=cfg.data.max_length,
        batch_size=batch_size,
        precision=precision,
        zscores=False,
    )
    _sync(device)
    score_s = time.perf_counter() - start
    gen_tps, single_tps = batched_new / batched_s, single_new / single_s
    return {
        "precision": precision,
        "prompts": len(records),
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "generated_tokens": batched_new,  # batched and one-at-a-time greedy runs should agree
        "generated_tokens_one_at_a_time": single_new,
        "generated_tokens_per_s": gen_tps,
        "generated_tokens_per_s_one_at_a_time": single_tps,
        "generation_speedup": gen_tps / single_tps if single_tps else float("nan"),
        "scored_tokens_per_s": scores.tokens / score_s,
        **peak_memory(device),
    }


def _method_config(base: dict[str, Any], method: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """`base` with another recipe. The demo recipe's own training settings (full mode, its lr
    and steps) go back to the defaults, so each measured recipe runs as it would by default;
    then the user's `overrides` (--set) apply again, so `--set train.mode=full` still holds."""
    from lm_unlearn.config import DEMO_RECIPE, TrainConfig

    data = json.loads(json.dumps(base))
    if data.get("objective") == DEMO_RECIPE["objective"]:
        for key in DEMO_RECIPE["train"]:
            data["train"][key] = TrainConfig.model_fields[key].default
        apply_overrides(data, [o for o in overrides or [] if o.startswith("train.")])
    return dict(data, method=method, objective=None)


def _isolated(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """fn(*args) in a fresh process, so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def _cpu_model() -> str:
    """The CPU's name and its bf16 matmul instructions (AMX or AVX-512 BF16), from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    name = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), ""
    )
    flags = set(
        next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    )
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{name or platform.machine()} ({', '.join(bf16) or 'no bf16 matmul instructions'})"


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": device.type,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_start"] = os.getloadavg()[0]
    return info


def fraction_of_peak(run: dict[str, Any], peak: dict[str, float]) -> float:
    """Counted FLOP/s over the matmul peak of the run's precision. Above 1 means the count or
    the peak is wrong (the peak is the best of several windows before and after the methods),
    so it is an error, not a figure."""
    dtype = "bf16" if run["precision"] == "bf16" else "fp32"
    fraction = run["flops_per_s"] / peak[dtype]
    if not 0 <= fraction <= 1:
        raise UnlearnError(
            f"perf {run['method']}: {run['flops_per_s'] / 1e9:.1f} GFLOP/s counted against a measured "
            f"{dtype} matmul peak of {peak[dtype] / 1e9:.1f} GFLOP/s is {100 * fraction:.0f} % of peak, "
            "which cannot be: the machine's load changed during the run (rerun it quieter, or with "
            "OMP_NUM_THREADS set to the free cores), or the count is wrong (report it)"
        )
    return fraction


def paired_median_speedup(stock_steps: list[float], our_steps: list[float]) -> float:
    """median_i(stock_i / ours_i) over the timed steps, step i being the same batch on both sides.

    `baseline_speedup` divides mean rates, so one stray slow stock step (the stock step's
    times have varied 2-3x within a run on a shared machine) moves it; this median does not."""
    return statistics.median(s / o for s, o in zip(stock_steps, our_steps, strict=True))


def compare_with_baseline(run: dict[str, Any], baseline: dict[str, Any]) -> None:
    """Add the baseline and our ratios to it to `run` (the same tokens, or an error)."""
    if baseline["tokens_per_step"] != run["tokens_per_step"]:
        raise UnlearnError(
            f"perf {run['method']}: the baseline trained on {baseline['tokens_per_step']} tokens per "
            f"step, ours on {run['tokens_per_step']}; their speeds are not comparable"
        )
    memory = "peak_gpu_allocated_gib" if "peak_gpu_allocated_gib" in run else "peak_rss_gib"
    run["baseline"] = baseline
    run["baseline_speedup"] = run["tokens_per_s"] / baseline["tokens_per_s"]
    run["baseline_speedup_median"] = paired_median_speedup(baseline["step_s_each"], run["step_s_each"])
    # A slow stock step can only raise the two above; this one it cannot.
    run["baseline_speedup_floor"] = min(baseline["step_s_each"]) / run["step_s"]  # step_s: our median
    run["baseline_memory_ratio"] = run[memory] / baseline[memory]


def perf_baseline(
    cfg_data: dict[str, Any], warmup: int, steps: int, workdir: str, threads: int | None = None
) -> dict[str, Any]:
    """The stock step (`perf_baseline.baseline_method`) on the config `perf_method` measures,
    with the same thread count and the same memory measure."""
    from lm_unlearn.perf_baseline import baseline_method

    device, cfg = _start_measurement(cfg_data, warmup, steps, workdir, threads)
    return {**baseline_method(cfg, warmup, steps, device), **peak_memory(device)}


def measure_method(
    call: Callable, data: dict[str, Any], warmup: int, steps: int, workdir: str, baseline: bool
):
    """Our run of one method, then (baseline=True) the stock step on the same batches, each in
    `call` (a fresh process when isolated) with this process's thread count."""
    threads = torch.get_num_threads()
    run = call(perf_method, data, warmup, steps, workdir, threads)
    if baseline:
        try:
            compare_with_baseline(run, call(perf_baseline, data, warmup, steps, workdir, threads))
        except ConfigError as exc:  # a method the stock step cannot run (whp)
            run["baseline"] = {"skipped": str(exc)}
    return run


def run_perf(
    cfg: RunConfig,
    methods: list[str],
    *,
    warmup: int = 1,
    steps: int = 3,
    eval_prompts: int = 16,
    max_new_tokens: int = 32,
    eval_batch_size: int = 16,
    with_eval: bool = True,
    isolate: bool = True,
    peak_size: int | None = None,
    baseline: bool = True,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Measure each method in `methods` (recipe names; empty: cfg's own) and, with `baseline`,
    the stock step on the same batches; then evaluation and the matmul peak. `overrides`: the
    --set options cfg was made with (they outrank the demo recipe's settings, see _method_config)."""
    from lm_unlearn.precision import resolve_precision

    device = perf_device()
    call = _isolated if isolate else (lambda fn, *args: fn(*args))
    result: dict[str, Any] = {"machine": machine_info(device), "memory_isolated": isolate}

    # bf16's peak only when the runs train in bf16: without bf16 instructions (AVX2) a 2048²
    # bf16 matmul takes seconds, and no figure would be compared with it.
    dtypes = {"fp32": torch.float32}
    if resolve_precision(cfg.train.precision) == "bf16":
        dtypes["bf16"] = torch.bfloat16

    def peaks() -> dict[str, float]:
        return {name: matmul_peak(dtype, device, peak_size) for name, dtype in dtypes.items()}

    before = peaks()
    base = cfg.model_dump(mode="json")
    with tempfile.TemporaryDirectory(prefix="lm_unlearn_perf_") as workdir:
        runs = [
            measure_method(
                call,
                _method_config(base, m, overrides) if methods else base,
                warmup,
                steps,
                workdir,
                baseline,
            )
            for m in methods or [cfg.method]
        ]
    result["train"] = runs
    if with_eval:
        result["eval"] = call(perf_eval, base, eval_prompts, max_new_tokens, eval_batch_size)
    after = peaks()
    peak = {k: max(before[k], after[k]) for k in before}
    result["matmul_peak_flops"] = peak
    result["matmul_peak_flops_each"] = {"before": before, "after": after}
    for run in runs:
        run["fraction_of_peak"] = fraction_of_peak(run, peak)
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    return result


def format_table(result: dict[str, Any]) -> str:
    """A short plain-text summary of `run_perf`'s result."""
    peak, machine = result["matmul_peak_flops"], result["machine"]
    memory = "peak_gpu_allocated_gib" if result["machine"]["device"] == "cuda" else "peak_rss_gib"
    lines = [
        f"matmul peak: {', '.join(f'{k} {v / 1e9:.0f} GFLOP/s' for k, v in peak.items())} "
        f"({machine.get('gpu', machine['cpu'])}, {machine['torch_threads']} CPU threads, "
        f"load {machine.get('load_average_1min_at_start', float('nan')):.1f})",
        "",
        f"{'method':<12} {'mode':<5} {'ref':<10} {'prec':<5} {'tok/step':>8} {'step s':>7} {'tok/s':>8} "
        f"{'GF/step':>8} {'GF/s':>6} {'% peak':>7} {'mem GiB':>8} | {'stock tok/s':>11} {'speedup':>7} "
        f"{'median':>6} {'floor':>6} {'mem ratio':>9}",
    ]
    for r in result["train"]:
        base = r.get("baseline", {})
        stock = (
            f"{base['tokens_per_s']:>11.1f} {r['baseline_speedup']:>6.2f}x "
            f"{r['baseline_speedup_median']:>5.2f}x {r['baseline_speedup_floor']:>5.2f}x "
            f"{r['baseline_memory_ratio']:>8.2f}x"
            if "tokens_per_s" in base
            else base.get("skipped", "not measured")
        )
        lines.append(
            f"{r['method']:<12} {r['mode']:<5} {r['reference']:<10} {r['precision']:<5} "
            f"{r['tokens_per_step']:>8.0f} {r['step_s']:>7.3f} {r['tokens_per_s']:>8.1f} "
            f"{r['flops_per_step'] / 1e9:>8.1f} {r['flops_per_s'] / 1e9:>6.1f} "
            f"{100 * r['fraction_of_peak']:>6.1f}% {r[memory]:>8.2f} | {stock}"
        )
    if any("tokens_per_s" in r.get("baseline", {}) for r in result["train"]):
        lines.append(
            "stock: the same method and batches as a stock Trainer-based toolkit runs them (full "
            "fine-tuning, full logits, live reference copy); speedup = our tok/s / stock tok/s; "
            "median = the median over steps of stock step s / our step s on the same batch; "
            "floor = the stock's fastest step / our median step"
        )
    if "eval" in result:
        e = result["eval"]
        lines += [
            "",
            f"generation: {e['generated_tokens_per_s']:.1f} tok/s batched ({e['batch_size']}), "
            f"{e['generated_tokens_per_s_one_at_a_time']:.1f} tok/s one at a time "
            f"({e['generation_speedup']:.1f}x); scoring: {e['scored_tokens_per_s']:.0f} tok/s",
        ]
    if not result["memory_isolated"]:
        lines.append("memory: process peak, not isolated per method (run without --no-isolate to isolate)")
    return "\n".join(lines)
