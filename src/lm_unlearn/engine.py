"""The one training loop: accelerate, LoRA or full, checkpoints, guards, progress."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType
from tqdm.auto import tqdm
from transformers import get_scheduler

from lm_unlearn import checkpoint as ckpt
from lm_unlearn.config import RunConfig
from lm_unlearn.data import PromptFormat, encode_records, read_records
from lm_unlearn.data.demo import demo_dataset
from lm_unlearn.data.sampling import StepData, read_refusals
from lm_unlearn.errors import ConfigError, DataError
from lm_unlearn.evaluation.cost import peak_gpu_bytes, peak_rss_bytes, reset_peak_rss, return_freed_memory
from lm_unlearn.files import atomic_write_json, atomic_write_text, sha256_tree
from lm_unlearn.manifest import data_entry, now, package_versions, records_digest
from lm_unlearn.methods import dispatch, finish
from lm_unlearn.methods.masks import apply_mask
from lm_unlearn.models import frozen_linears_to, load_model, save_model, wrap_lora
from lm_unlearn.objectives import StepContext, build_objective
from lm_unlearn.objectives.reference import build_reference
from lm_unlearn.precision import has_accelerator, resolve_frozen_dtype, resolve_precision
from lm_unlearn.rundir_checks import save_failed
from lm_unlearn.validation import Keeper, Validator, check_target, hold_out, record_digests

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    stop_reason: str
    history: list[dict[str, Any]] = field(default_factory=list)


def read_history(path: Path, up_to_step: int | None = None) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if up_to_step is None or row["step"] <= up_to_step:
                rows.append(row)
    return rows


def _datasets(cfg: RunConfig):
    if cfg.data.forget is None:  # the built-in demo scenario
        return demo_dataset("forget"), cfg.data.retain or demo_dataset("retain")
    return cfg.data.forget, cfg.data.retain


def train(
    cfg: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    on_validation: Callable[[dict, dict], None] | None = None,
) -> RunResult:
    """Unlearn according to `cfg`, writing model, manifest, metrics and checkpoints to run_dir.

    on_validation(row, baseline) is called after each validation (`unlearn tune` prunes there).
    """
    special = dispatch(cfg, run_dir, resume)  # sequential requests; in-context unlearning (icu)
    if special is not None:
        return special
    t = cfg.train
    return_freed_memory()  # what an earlier run in this process left (benchmark grids)
    reset_peak_rss()  # the manifest's cost block reports this run's own peak
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    precision = resolve_precision(t.precision, "training")
    # accelerate keeps its state per process; a second train() in one process (benchmark grids,
    # sequential requests, tests) may ask for another precision, so the mixed-precision state is
    # reset while the process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    # cpu=True on a machine without an accelerator lets torchrun/`accelerate launch` start a
    # gloo process group (accelerate only picks MULTI_CPU when told it is on CPU).
    accelerator = Accelerator(
        mixed_precision="bf16" if precision == "bf16" else "no", cpu=not has_accelerator()
    )
    main = accelerator.is_main_process
    torch.manual_seed(t.seed)
    objective = build_objective(cfg.method, cfg.objective)

    forget_cfg, retain_cfg = _datasets(cfg)
    needs_retain = any({"retain", "mismatch"} & set(w.term.splits) for w in objective.terms)
    if needs_retain and retain_cfg is None:
        users = [w.term.name for w in objective.terms if {"retain", "mismatch"} & set(w.term.splits)]
        raise ConfigError(f"terms {', '.join(users)} need normal data: set data.retain.path")
    forget_records = read_records(forget_cfg, "forget")
    retain_records = read_records(retain_cfg, "retain") if retain_cfg is not None else None
    heldout_records = read_records(heldout_cfg, "heldout") if (heldout_cfg := _heldout(cfg)) else []
    forget_records, forget_val, retain_records, retain_val = _validation_splits(
        cfg, forget_records, retain_records
    )

    frozen_dtype = resolve_frozen_dtype(t.frozen_dtype, precision)
    # LoRA with bf16 frozen weights reads the checkpoint in its own dtype (bf16 for most hub
    # models), so a large model never passes through an fp32 copy in host memory; the rest is
    # then upcast to fp32 (frozen_linears_to). The model equals an fp32 load converted after;
    # only peft's random adapter init is then drawn in bf16 (fp32 checkpoints load as before).
    loaded = load_model(
        cfg.model.name,
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
        dtype="auto" if t.mode == "lora" and frozen_dtype == "bf16" else torch.float32,
    )
    model, tokenizer = loaded.model, loaded.tokenizer
    fmt = PromptFormat.choose(tokenizer, cfg.model.template, cfg.model.system_prompt)
    max_length = cfg.data.max_length
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and max_length > context:
        if cfg.data.overlong == "error":
            raise ConfigError(f"data.max_length={max_length} exceeds the model's context {context}")
        log.warning("data.max_length=%d exceeds the model context %d; using %d", max_length, context, context)
        max_length = context
    forget = encode_records(forget_records, fmt, max_length, cfg.data.overlong)
    retain = encode_records(retain_records, fmt, max_length, cfg.data.overlong) if retain_records else None

    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    reference_model = None
    if t.mode == "lora":
        model = wrap_lora(model, t.lora.r, t.lora.alpha, t.lora.dropout, t.lora.target_modules)
    elif objective.needs_reference and t.reference == "live":
        # Full fine-tuning: a frozen copy, made only because a term compares with the original.
        reference_model = copy.deepcopy(model).eval().requires_grad_(False)
        reference_model.to(accelerator.device)
    frozen_bf16 = 0
    if frozen_dtype == "bf16":
        frozen = [m for m in (model, reference_model) if m is not None]
        frozen_bf16 = sum(frozen_linears_to(m, torch.bfloat16) for m in frozen)
    model.train()
    validator = _validator(cfg, fmt, max_length, precision, forget_val, retain_val, heldout_records)
    mask_summary = apply_mask(
        t.mask,
        objective,
        model,
        forget,
        tokenizer.pad_token_id,
        mode=t.mode,
        weight_decay=t.weight_decay,
        batch_size=t.batch_size,
        device=accelerator.device,
    )

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    # The scheduler stays outside accelerate.prepare: a prepared scheduler steps once per
    # process, which would make N-process runs decay N times faster than one process.
    scheduler = get_scheduler(t.schedule, optimizer, t.warmup_steps, t.max_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)

    data = StepData(
        forget,
        forget_records,
        retain,
        retain_records,
        fmt,
        batch_size=t.batch_size,
        retain_batch_size=t.retain_batch_size or t.batch_size,
        max_length=max_length,
        seed=t.seed,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        refusals=read_refusals(cfg.data.refusals),
    )
    # Live: the frozen copy, or the LoRA base with adapters disabled; precompute: cached before
    # any update (so before a resumed run loads its checkpoint).
    reference_forward = build_reference(
        t.reference,
        objective,
        unwrapped,
        reference_model,
        data.batch,
        t.max_steps * t.grad_accum,
        accelerator.autocast,
        accelerator.device,
    )

    # The original's validation values, before any update (so before a resumed run loads).
    baseline = validator.baseline(unwrapped) if validator is not None else {}
    keeper = Keeper(t.target, baseline)

    run_dir.mkdir(parents=True, exist_ok=True)
    history_path = run_dir / "metrics.jsonl"
    start_step = 0
    manifest_path = run_dir / "manifest.json"
    if resume:
        found = ckpt.latest_checkpoint(run_dir)
        if found is not None:
            start_step = ckpt.load_checkpoint(found, unwrapped, optimizer, scheduler, objective.state)
            log.info("resuming from %s (step %d)", found, start_step)
        manifest = json.loads(manifest_path.read_text())
        manifest.setdefault("resumed_at", []).append({"time": now(), "step": start_step})
    else:
        manifest = {
            "tool": "lm-unlearn",
            "status": "running",
            "started": now(),
            "config": cfg.model_dump(mode="json"),
            "objective": objective.describe(),
            "mask": mask_summary,
            "precision": precision,
            "frozen_dtype": {"dtype": frozen_dtype, "parameters": frozen_bf16},
            "processes": accelerator.num_processes,
            "versions": package_versions(),
            "source_model": {"spec": loaded.spec, "path": loaded.path, "sha256": loaded.source_hashes},
            "data": {"forget": data_entry(forget_cfg.path, forget_records)}
            | ({"retain": data_entry(retain_cfg.path, retain_records)} if retain_records else {}),
            "validation": _validation_entry(forget_val, retain_val),
        }
    history = read_history(history_path, up_to_step=start_step)
    for row in history:  # a resumed run's earlier validated steps still count for the choice
        if any(k.startswith("val_") for k in row):
            keeper.rows.append(row)
    if main:
        atomic_write_json(run_dir / "validation.json", _validation_digests(forget_val, retain_val))
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json")))
        atomic_write_text(history_path, "".join(json.dumps(r) + "\n" for r in history))
        atomic_write_json(manifest_path, manifest)

    step, stop_reason = start_step, "max_steps"
    accum = t.grad_accum
    teaching = all(w.term.name == "sft" for w in objective.terms)  # e.g. `unlearn prepare`
    label = "fine-tuning" if teaching else "unlearning"
    bar = tqdm(total=t.max_steps, initial=start_step, disable=not main, desc=label, dynamic_ncols=True)
    # bf16: one forward over all splits saves the per-split bf16 weight copies (context.py); fp32
    # has no copies to save, so it keeps per-split shapes (and their exact rounding).
    splits = sorted({s for w in objective.terms for s in w.term.splits})
    together = tuple(splits) if precision == "bf16" else ()
    started = time.perf_counter()
    while step < t.max_steps:
        sums: dict[str, float] = defaultdict(float)
        finite = True
        tokens = 0
        for micro in range(accum):
            micro_step = step * accum + micro
            torch.manual_seed(t.seed + micro_step)  # dropout identical on resume
            ctx = StepContext(
                model,
                lambda split, m=micro_step: data.batch(split, m),
                reference_forward,
                accelerator.autocast,
                accelerator.device,
            )
            ctx.together = together
            sync = accelerator.no_sync(model) if micro < accum - 1 else nullcontext()
            with sync:
                loss, values = objective(ctx)
                ok = torch.tensor(float(torch.isfinite(loss)), device=accelerator.device)
                if accelerator.reduce(ok, "sum").item() < accelerator.num_processes:
                    finite = False
                    break
                accelerator.backward(loss / accum)
            sums["loss"] += loss.item() / accum
            for name, value in values.items():
                sums[name] += value.item() / accum
            if "forget" in ctx.computed:
                sums["forget_nll"] += ctx.computed["forget"].mean_nll.mean().item() / accum
            tokens += ctx.tokens
        if not finite:
            stop_reason = f"non-finite loss at step {step + 1}; kept the last finite state"
            optimizer.zero_grad(set_to_none=True)
            break
        grad_norm = accelerator.clip_grad_norm_(params, t.max_grad_norm or float("inf"))
        if not torch.isfinite(torch.as_tensor(grad_norm)):
            stop_reason = f"non-finite gradient at step {step + 1}; kept the last finite state"
            optimizer.zero_grad(set_to_none=True)
            break
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        row = {
            "step": step,
            **_mean_over_processes(accelerator, sums),
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            "tokens": int(accelerator.reduce(torch.tensor(tokens, device=accelerator.device), "sum")),
            "elapsed_s": round(time.perf_counter() - started, 3),
        }
        choice = None
        if validator is not None and (step % t.eval_every == 0 or step == t.max_steps):
            row.update(validator.measure(unwrapped))
            choice = keeper.observe(row, unwrapped)
            if on_validation is not None:
                on_validation(row, baseline)
        history.append(row)
        if main:
            with open(history_path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            shown = [k for k in row if k.startswith("val_")] or list(sums)
            bar.set_postfix({k: f"{row[k]:.3g}" for k in shown}, refresh=False)
            bar.update(1)
        if choice is not None and choice.stop:
            stop_reason = f"step {step}: {choice.reason}"
            break
        if t.checkpoint_every and step % t.checkpoint_every == 0 and step < t.max_steps:
            accelerator.wait_for_everyone()
            if main:
                ckpt.save_checkpoint(run_dir, step, unwrapped, optimizer, scheduler, terms=objective.state)
        bound = t.stop.forget_nll_above
        if bound is not None and row.get("forget_nll", float("-inf")) > bound:
            stop_reason = f"forget NLL {row['forget_nll']:.3g} > stop.forget_nll_above={bound}"
            break
    bar.close()

    selection = keeper.restore(unwrapped, step)  # the chosen step's weights, before anything is saved
    manifest.update(finish(cfg, objective, unwrapped, cfg.model.name))  # e.g. task-vector negation
    accelerator.wait_for_everyone()
    return_freed_memory()  # the last step's activations, before saving maps a merged model
    # FSDP / ZeRO-3 hold a shard per rank: every rank takes part in gathering the full state
    # dict (accelerate's get_state_dict), which the main process saves; a LoRA merge then
    # reloads the source and the saved adapter instead of merging sharded weights in place.
    # (Written to accelerate's documented API; not run here: it needs GPUs.)
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    state_dict = accelerator.get_state_dict(model) if sharded else None
    if main:
        merge_from = loaded.path if frozen_bf16 or sharded else None
        try:
            outputs = _save_outputs(cfg, run_dir, unwrapped, tokenizer, merge_from, state_dict)
        except OSError as exc:  # e.g. a full disk: say so in the manifest and the message
            raise save_failed(run_dir, manifest, exc) from None
        manifest.update(
            {
                "status": "finished",
                "finished": now(),
                "steps": step,
                "stop_reason": stop_reason,
                "selection": selection,
                "final": history[-1] if history else None,
                "cost": {
                    "peak_rss_bytes": peak_rss_bytes(),
                    "peak_gpu_memory_bytes": peak_gpu_bytes(),
                },
                "outputs": outputs,
            }
        )
        atomic_write_json(manifest_path, manifest)
    return RunResult(run_dir=run_dir, steps=step, stop_reason=stop_reason, history=history)


def _mean_over_processes(accelerator: Accelerator, sums: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1:
        return dict(sums)
    keys = sorted(sums)
    values = torch.tensor([sums[k] for k in keys], device=accelerator.device)
    values = accelerator.reduce(values, "mean")
    return dict(zip(keys, values.tolist()))


def _save_outputs(
    cfg: RunConfig,
    run_dir: Path,
    model,
    tokenizer,
    fp32_base: str | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """adapter/ and the merged model/ (LoRA), or model/ (full).

    fp32_base: the source model's path when the frozen base was stored in bf16 (or sharded);
    the saved adapter is then merged into the source weights reloaded in fp32, since adding a
    small LoRA delta to bf16 weights would round much of it away.
    state_dict: the gathered full state dict of a sharded model (None: the model's own).
    """
    outputs: dict[str, Any] = {}
    if cfg.train.mode == "lora":
        save_model(model, tokenizer, run_dir / "adapter", state_dict)
        outputs["adapter"] = {"path": "adapter", "sha256": sha256_tree(run_dir / "adapter")}
        if cfg.save.merge:
            if fp32_base is not None:
                from peft import PeftModel

                base = load_model(
                    fp32_base, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
                ).model
                model = PeftModel.from_pretrained(base, run_dir / "adapter")
            merged = model.merge_and_unload()
            save_model(merged, tokenizer, run_dir / "model")
    else:
        save_model(model, tokenizer, run_dir / "model", state_dict)
    if (run_dir / "model").is_dir():
        outputs["model"] = {"path": "model", "sha256": sha256_tree(run_dir / "model")}
    return outputs


def _heldout(cfg: RunConfig):
    if cfg.data.heldout is not None:
        return cfg.data.heldout
    return demo_dataset("heldout") if cfg.data.forget is None else None


def _validation_splits(cfg: RunConfig, forget: list, retain: list | None):
    """(forget to train on, forget validation, retain to train on, retain validation)."""
    t = cfg.train
    if t.eval_every == 0:
        return forget, [], retain, []
    forget, forget_val = hold_out(forget, t.validation.forget, "forget", t.seed)
    retain_val: list = []
    if retain:
        retain, retain_val = hold_out(retain, t.validation.retain, "retain", t.seed)
    return forget, forget_val, retain, retain_val


def _validator(
    cfg: RunConfig, fmt, max_length, precision, forget_val, retain_val, heldout
) -> Validator | None:
    t = cfg.train
    if t.eval_every == 0:
        check_target(t.target, 0, None)
        return None
    patterns = t.validation.judge_patterns
    if not patterns and cfg.data.forget is None:  # the demo: the evaluation's own judge patterns
        from lm_unlearn.evaluation.config import DEMO_PATTERNS

        patterns = DEMO_PATTERNS
    needs_heldout = t.target.forget_nll == "heldout"
    validator = Validator(
        forget_val,
        retain_val,
        fmt,
        t.validation,
        max_length,
        precision,
        patterns,
        heldout if needs_heldout else [],
    )
    check_target(t.target, t.eval_every, validator)
    return validator


def _validation_entry(forget_val: list, retain_val: list) -> dict[str, Any]:
    return {
        role: {"records": len(recs), "content_sha256": records_digest(recs)}
        for role, recs in (("forget", forget_val), ("retain", retain_val))
        if recs
    }


def _validation_digests(forget_val: list, retain_val: list) -> dict[str, list[str]]:
    """Per-record digests of the validation splits: the evaluation leaves these records out."""
    return {"forget": record_digests(forget_val), "retain": record_digests(retain_val)}


def check_data(cfg: RunConfig) -> None:
    """Read every configured data file, so bad input fails before the model loads."""
    forget_cfg, retain_cfg = _datasets(cfg)
    read_records(forget_cfg, "forget")
    if retain_cfg is not None:
        read_records(retain_cfg, "retain")
    if cfg.data.heldout is not None:
        read_records(cfg.data.heldout, "heldout")


__all__ = ["RunResult", "train", "check_data", "DataError"]
