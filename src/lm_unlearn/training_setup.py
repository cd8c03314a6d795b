"""The pieces a training run is set up from: accelerator, data, model, optimizer, outputs.

Each is a named function that `engine.setup` calls in order; none of them trains.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

from lm_unlearn.config import DatasetConfig, RunConfig, TrainConfig
from lm_unlearn.data import PromptFormat, Record, encode_records, read_records
from lm_unlearn.data.demo import demo_dataset
from lm_unlearn.data.sampling import StepData, read_refusals
from lm_unlearn.errors import ConfigError
from lm_unlearn.files import sha256_tree
from lm_unlearn.memory import reset_peak_rss, return_freed_memory
from lm_unlearn.models import frozen_linears_to, load_model, save_model, skip_lora_input_casts, wrap_lora
from lm_unlearn.norm_cast import cast_norm_outputs_once
from lm_unlearn.objectives import Objective
from lm_unlearn.objectives.alternates import ensure_alternates
from lm_unlearn.objectives.reference import reference_mode
from lm_unlearn.precision import has_accelerator, resolve_precision
from lm_unlearn.rundir import RunDir
from lm_unlearn.swiglu import recompute_silu_in_mlps
from lm_unlearn.tied_head import head_reads_bf16_copy
from lm_unlearn.validation import split_for_validation

log = logging.getLogger(__name__)


def datasets(cfg: RunConfig) -> tuple[DatasetConfig, DatasetConfig | None]:
    """(forget, retain) data sets; the built-in demo's when no forget set is given."""
    if cfg.data.forget is None:
        return demo_dataset("forget"), cfg.data.retain or demo_dataset("retain")
    return cfg.data.forget, cfg.data.retain


def heldout_dataset(cfg: RunConfig) -> DatasetConfig | None:
    if cfg.data.heldout is not None:
        return cfg.data.heldout
    return demo_dataset("heldout") if cfg.data.forget is None else None


def start_accelerator(t: TrainConfig) -> tuple[Accelerator, str]:
    """A fresh accelerator for this run and the precision it trains in."""
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
    fsdp_on_cpu(accelerator)
    return accelerator, precision


def adamw(params: list[torch.nn.Parameter], t: TrainConfig, sharded: bool = False) -> torch.optim.AdamW:
    """torch's AdamW, with its fused kernel (one pass over each tensor instead of about ten
    elementwise ops) unless `sharded`: FSDP and DeepSpeed shard or replace the parameters, so
    they get the default kernel. The fused kernel is what transformers' Trainer uses by default
    since torch 2.8 (`adamw_torch_fused`); it computes the same update up to rounding."""
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, fused=None if sharded else True)


def shards_parameters(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def fsdp_on_cpu(accelerator: Accelerator) -> None:
    """Honour an FSDP launch config on a CPU-only machine.

    accelerate (1.15) only switches to FSDP from a GPU-like process group: on CPU it ignores
    ACCELERATE_USE_FSDP and silently runs DDP (MULTI_CPU). torch's FSDP2 (`fully_shard`) does
    run on gloo, and accelerate's FSDP2 preparation, clipping and state-dict gathering are
    device-agnostic, so the state is switched to FSDP with the plugin read from the launch config.
    """
    on_cpu = accelerator.distributed_type in (DistributedType.MULTI_CPU, DistributedType.FSDP)
    if accelerator.device.type != "cpu" or not on_cpu:
        return
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return
    if os.environ.get("FSDP_VERSION", "1") != "2":
        raise ConfigError(
            "FSDP on CPU needs fsdp_version: 2 in the accelerate config (torch's fully_shard); "
            "FSDP1 wants a GPU"
        )
    if os.environ.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false").lower() == "true":
        raise ConfigError(
            "fsdp_cpu_ram_efficient_loading: true needs a GPU; set it to false in the accelerate config "
            "(the engine loads the weights on every rank)"
        )
    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables `accelerate launch` sets
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    # As accelerate does on GPUs: every later AcceleratorState() copies the process state back.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    log.info("FSDP on CPU: sharding with torch's fully_shard (FSDP2) over gloo")


@dataclass
class TrainingRecords:
    forget: list[Record]  # trained on
    retain: list[Record] | None
    forget_val: list[Record]  # held out for validation, never trained or evaluated on
    retain_val: list[Record]
    heldout: list[Record]
    forget_path: str
    retain_path: str | None


def read_training_records(cfg: RunConfig, objective: Objective) -> TrainingRecords:
    forget_cfg, retain_cfg = datasets(cfg)
    users = [w.term.name for w in objective.terms if {"retain", "mismatch"} & set(w.term.splits)]
    if users and retain_cfg is None:
        raise ConfigError(f"terms {', '.join(users)} need normal data: set data.retain.path")
    forget = read_records(forget_cfg, "forget")
    retain = read_records(retain_cfg, "retain") if retain_cfg is not None else None
    heldout = read_records(heldout_cfg, "heldout") if (heldout_cfg := heldout_dataset(cfg)) else []
    forget, forget_val, retain, retain_val = split_for_validation(cfg.train, forget, retain)
    retain_path = retain_cfg.path if retain_cfg is not None else None
    return TrainingRecords(forget, retain, forget_val, retain_val, heldout, forget_cfg.path, retain_path)


def load_source(cfg: RunConfig, frozen_dtype: str):
    # LoRA with bf16 frozen weights reads the checkpoint in its own dtype (bf16 for most hub
    # models), so a large model never passes through an fp32 copy in host memory; the rest is
    # then upcast to fp32 (frozen_linears_to). The model equals an fp32 load converted after;
    # only peft's random adapter init is then drawn in bf16 (fp32 checkpoints load as before).
    return load_model(
        cfg.model.name,
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
        dtype="auto" if cfg.train.mode == "lora" and frozen_dtype == "bf16" else torch.float32,
    )


def step_data(
    cfg: RunConfig,
    records: TrainingRecords,
    fmt: PromptFormat,
    max_length: int,
    mismatch_k: int = 1,
    rank: int = 0,
    world_size: int = 1,
) -> StepData:
    """The examples tokenised once, and each micro-step's batches drawn from them (a pure
    function of the seed and the micro-step, so another set-up of the run sees the same batches);
    mismatch_k: answers drawn per forget prompt (the objective's draws_per_prompt)."""
    t = cfg.train
    forget = encode_records(records.forget, fmt, max_length, cfg.data.overlong)
    retain = encode_records(records.retain, fmt, max_length, cfg.data.overlong) if records.retain else None
    return StepData(
        forget,
        records.forget,
        retain,
        records.retain,
        fmt,
        batch_size=t.batch_size,
        retain_batch_size=t.retain_batch_size or t.batch_size,
        max_length=max_length,
        seed=t.seed,
        rank=rank,
        world_size=world_size,
        refusals=read_refusals(cfg.data.refusals),
        mismatch_k=mismatch_k,
    )


def fit_max_length(cfg: RunConfig, model) -> int:
    """data.max_length, cut to the model's context (or an error, with data.overlong=error)."""
    max_length = cfg.data.max_length
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and max_length > context:
        if cfg.data.overlong == "error":
            raise ConfigError(f"data.max_length={max_length} exceeds the model's context {context}")
        log.warning("data.max_length=%d exceeds the model context %d; using %d", max_length, context, context)
        max_length = context
    return max_length


def prepare_model(
    cfg: RunConfig, objective: Objective, model, device, frozen_dtype: str, sharded: bool = False
):
    """(the model to train, the frozen reference copy or None, frozen Linears stored in bf16).
    sharded: FSDP will shard the parameters (a tied head then keeps autocast's own cast)."""
    t = cfg.train
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    reference_model = None
    if t.mode == "lora":
        model = wrap_lora(model, t.lora.r, t.lora.alpha, t.lora.dropout, t.lora.target_modules)
    elif objective.reads_original and reference_mode(t.reference, objective) == "live":
        # Full fine-tuning: a frozen copy, made only because a term compares with the original.
        reference_model = copy.deepcopy(model).eval().requires_grad_(False)
        reference_model.to(device)
    frozen_bf16 = 0
    if frozen_dtype == "bf16":
        frozen = [m for m in (model, reference_model) if m is not None]
        frozen_bf16 = sum(frozen_linears_to(m, torch.bfloat16) for m in frozen)
        skip_lora_input_casts(model)  # bf16 frozen weights: every forward runs under autocast
        if not sharded:
            head_reads_bf16_copy(model)  # a frozen head tied to the fp32 embeddings
    for m in (model, reference_model):  # under autocast; a no-op without it
        if m is not None:
            cast_norm_outputs_once(m)
    recompute_silu_in_mlps(model)  # the trained model only: the reference keeps no activations
    model.train()
    return model, reference_model, frozen_bf16


def save_outputs(
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


def original_alternates(
    objective: Objective,
    model: torch.nn.Module,
    fmt: PromptFormat,
    forget: list,
    run_dir: Path,
    acc: Accelerator,
) -> list[list[str]] | None:
    """Answers a term has the original model generate (altpo's alternates): from the model while
    it is still the original (before any update, and before a resumed run loads its checkpoint),
    or from the run directory's cache."""
    settings = objective.generated_answers()
    if settings is None:
        return None
    path = RunDir(run_dir).alternates
    return ensure_alternates(
        model, fmt, forget, path, settings, is_main=acc.is_main_process, wait=acc.wait_for_everyone
    )
