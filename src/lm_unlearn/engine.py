"""The one training loop: setup, loop, save.

`train` = `setup` (accelerator, data, model, optimizer, reference, validation, run directory;
one plain TrainState) -> `run_loop` (micro-steps, the finite-loss guard, clip, step, log,
validate, checkpoint, stop rules) -> `save` (the kept step's weights, model files, manifest).
Procedures that wrap the loop (sequential requests, in-context unlearning) sit above it in
`lm_unlearn.methods`, run by `lm_unlearn.api.unlearn`; this module never imports them. Terms'
lifecycle hooks run in setup (before_training, through the reference) and in save
(after_training). Setup's pieces are in `lm_unlearn.training_setup`.
"""

from __future__ import annotations

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
from accelerate.utils import DistributedType
from tqdm.auto import tqdm
from transformers import get_scheduler

from lm_unlearn import checkpoint as ckpt
from lm_unlearn import sam
from lm_unlearn.config import RunConfig
from lm_unlearn.data import PromptFormat, read_records
from lm_unlearn.data.sampling import StepData
from lm_unlearn.errors import ConfigError, DataError
from lm_unlearn.files import atomic_write_json, atomic_write_text
from lm_unlearn.manifest import data_entry, now, package_versions
from lm_unlearn.masks import apply_mask
from lm_unlearn.memory import peak_gpu_bytes, peak_rss_bytes, return_freed_memory
from lm_unlearn.models import LoadedModel, load_model
from lm_unlearn.objectives import Objective, StepContext, build_objective
from lm_unlearn.objectives.context import RunContext
from lm_unlearn.objectives.reference import build_reference
from lm_unlearn.precision import resolve_frozen_dtype
from lm_unlearn.rundir import Manifest, RunDir, RunResult, read_history, read_manifest, write_manifest
from lm_unlearn.rundir_checks import save_failed
from lm_unlearn.training_setup import (
    TrainingRecords,
    adamw,
    datasets,
    fit_max_length,
    load_source,
    original_alternates,
    prepare_model,
    read_training_records,
    save_outputs,
    shards_parameters,
    start_accelerator,
    step_data,
)
from lm_unlearn.validation import Keeper, Validator, build_validator, validation_digests, validation_entry

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Everything the loop and the save need, made once by `setup`."""

    cfg: RunConfig
    run_dir: Path
    accelerator: Accelerator
    precision: str
    objective: Objective
    source: LoadedModel  # the model as loaded (spec, path, hashes, tokenizer)
    model: torch.nn.Module  # as prepared by accelerate (maybe wrapped)
    unwrapped: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    data: StepData
    reference_forward: Any
    validator: Validator | None
    keeper: Keeper
    frozen_bf16: int
    # Terms whose gradients are kept apart from .grad, by group ("sam": the forget terms under
    # train.sam_rho; a rectifying term's own name, e.g. "gru"), and the step's kept gradients.
    apart: dict[str, tuple[str, ...]] = field(default_factory=dict)
    apart_grads: dict[str, list[torch.Tensor | None]] = field(default_factory=dict)
    manifest: Manifest = field(default_factory=Manifest)
    history: list[dict[str, Any]] = field(default_factory=list)
    start_step: int = 0
    on_validation: Callable[[dict, dict], None] | None = None

    @property
    def history_path(self) -> Path:
        return RunDir(self.run_dir).metrics


def train(
    cfg: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    on_validation: Callable[[dict, dict], None] | None = None,
) -> RunResult:
    """Train according to `cfg`, writing model, manifest, metrics and checkpoints to run_dir
    (a run of procedures, e.g. sequential requests, goes through `lm_unlearn.api.unlearn`).

    on_validation(row, baseline) is called after each validation (`unlearn tune` prunes there).
    """
    state = setup(cfg, run_dir, resume)
    state.on_validation = on_validation
    step, stop_reason = run_loop(state)
    return save(state, step, stop_reason)


def setup(cfg: RunConfig, run_dir: Path, resume: bool = False) -> TrainState:
    t = cfg.train
    accelerator, precision = start_accelerator(t)
    torch.manual_seed(t.seed)
    objective = build_objective(cfg.method, cfg.objective)
    check_sharded_support(accelerator, cfg, objective)
    records = read_training_records(cfg, objective)
    frozen_dtype = resolve_frozen_dtype(t.frozen_dtype, precision)
    source = load_source(cfg, frozen_dtype)
    fmt = PromptFormat.choose(source.tokenizer, cfg.model.template, cfg.model.system_prompt)
    max_length = fit_max_length(cfg, source.model)
    rank, world = accelerator.process_index, accelerator.num_processes
    data = step_data(cfg, records, fmt, max_length, objective.draws_per_prompt(), rank, world)
    model, reference_model, frozen_bf16 = prepare_model(
        cfg, objective, source.model, accelerator.device, frozen_dtype, shards_parameters(accelerator)
    )
    validator = build_validator(cfg, fmt, max_length, precision, records)
    mask = apply_mask(
        t.mask,
        objective,
        model,
        data.forget,
        source.tokenizer.pad_token_id,
        mode=t.mode,
        weight_decay=t.weight_decay,
        batch_size=t.batch_size,
        device=accelerator.device,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = adamw(params, t, sharded=shards_parameters(accelerator))
    # The scheduler stays outside accelerate.prepare: a prepared scheduler steps once per
    # process, which would make N-process runs decay N times faster than one process.
    scheduler = get_scheduler(t.schedule, optimizer, t.warmup_steps, t.max_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    # FSDP replaces each parameter by a sharded one (a DTensor); the optimizer is remapped to
    # them, and clipping and the gradient hooks below must see the same tensors.
    params = [p for p in model.parameters() if p.requires_grad]
    unwrapped = accelerator.unwrap_model(model)
    # Generated by the original model, so before any update (and before a resumed checkpoint loads),
    # under the run's autocast: bf16 frozen weights beside fp32 adapters need it, as training does.
    with accelerator.autocast():
        data.alternates = original_alternates(objective, unwrapped, fmt, records.forget, run_dir, accelerator)
    # Live: the frozen copy, or the LoRA base with adapters disabled; precompute: cached before
    # any update (so before a resumed run loads its checkpoint), as is the validation baseline.
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
    baseline = validator.baseline(unwrapped) if validator is not None else {}
    state = TrainState(
        cfg, run_dir, accelerator, precision, objective, source, model, unwrapped, params, optimizer,
        scheduler, data, reference_forward, validator, Keeper(t.target, baseline), frozen_bf16,
        apart_groups(objective, t.sam_rho),
    )  # fmt: skip
    describe = {"mask": mask, "frozen_dtype": {"dtype": frozen_dtype, "parameters": frozen_bf16}}
    open_run_dir(state, records, resume, describe)
    return state


def open_run_dir(state: TrainState, records: TrainingRecords, resume: bool, describe: dict) -> None:
    """A new run's manifest and files, or a resumed run's checkpoint, manifest and history."""
    cfg, run_dir = state.cfg, state.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        found = ckpt.latest_checkpoint(run_dir)
        if found is not None:
            state.start_step = ckpt.load_checkpoint(
                found, state.unwrapped, state.optimizer, state.scheduler, state.objective.state
            )
            log.info("resuming from %s (step %d)", found, state.start_step)
        state.manifest = read_manifest(run_dir)
        resumed = {"time": now(), "step": state.start_step}
        state.manifest.resumed_at = [*(state.manifest.resumed_at or []), resumed]
    else:
        state.manifest = new_manifest(state, records, describe)
    state.history = read_history(state.history_path, up_to_step=state.start_step)
    for row in state.history:  # a resumed run's earlier validated steps still count for the choice
        if any(k.startswith("val_") for k in row):
            state.keeper.rows.append(row)
    if state.accelerator.is_main_process:
        paths = RunDir(run_dir)
        atomic_write_json(paths.validation, validation_digests(records.forget_val, records.retain_val))
        atomic_write_text(paths.config, yaml.safe_dump(cfg.model_dump(mode="json")))
        atomic_write_text(state.history_path, "".join(json.dumps(r) + "\n" for r in state.history))
        write_manifest(run_dir, state.manifest)


def new_manifest(state: TrainState, records: TrainingRecords, describe: dict) -> Manifest:
    source = state.source
    data = {"forget": data_entry(records.forget_path, records.forget)}
    if records.retain:
        data["retain"] = data_entry(records.retain_path, records.retain)
    return Manifest(
        tool="lm-unlearn",
        status="running",
        started=now(),
        config=state.cfg.model_dump(mode="json"),
        objective=state.objective.describe(),
        **describe,
        precision=state.precision,
        processes=state.accelerator.num_processes,
        versions=package_versions(),
        source_model={"spec": source.spec, "path": source.path, "sha256": source.source_hashes},
        data=data,
        validation=validation_entry(records.forget_val, records.retain_val),
    )


def run_loop(state: TrainState) -> tuple[int, str]:
    """Train from state.start_step; returns (steps done, why it stopped)."""
    t, acc = state.cfg.train, state.accelerator
    main = acc.is_main_process
    teaching = state.objective.teaches  # e.g. `unlearn prepare`
    bar = tqdm(
        total=t.max_steps,
        initial=state.start_step,
        disable=not main,
        desc="fine-tuning" if teaching else "unlearning",
        dynamic_ncols=True,
    )
    step, stop_reason = state.start_step, "max_steps"
    started = time.perf_counter()
    while step < t.max_steps:
        sums, tokens, failure = micro_steps(state, step)
        if failure is None and state.apart:
            failure = adjust_gradients(state, step, sums)  # SAM's second pass, GRU's projection
        grad_norm = None
        if failure is None:
            grad_norm = acc.clip_grad_norm_(state.params, t.max_grad_norm or float("inf"))
            if not torch.isfinite(torch.as_tensor(grad_norm)):
                failure = "non-finite gradient"
        if failure is not None:
            stop_reason = f"{failure} at step {step + 1}; kept the last finite state"
            state.optimizer.zero_grad(set_to_none=True)
            break
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        step += 1
        row = {
            "step": step,
            **_mean_over_processes(acc, sums),
            "lr": state.scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            "tokens": int(acc.reduce(torch.tensor(tokens, device=acc.device), "sum")),
            "elapsed_s": round(time.perf_counter() - started, 3),
        }
        choice = None
        if state.validator is not None and (step % t.eval_every == 0 or step == t.max_steps):
            row.update(state.validator.measure(state.unwrapped))
            choice = state.keeper.observe(row, state.unwrapped)
            if state.on_validation is not None:
                state.on_validation(row, state.keeper.baseline)
        log_row(state, row, bar, list(sums))
        if choice is not None and choice.stop:
            stop_reason = f"step {step}: {choice.reason}"
            break
        if t.checkpoint_every and step % t.checkpoint_every == 0 and step < t.max_steps:
            acc.wait_for_everyone()
            if main or sharded(acc):  # FSDP: every rank gathers its shards, the main one writes
                terms = state.objective.state
                ckpt.save_checkpoint(
                    state.run_dir, step, state.unwrapped, state.optimizer, state.scheduler, terms=terms,
                    write=main,
                )  # fmt: skip
        bound = t.stop.forget_nll_above
        if bound is not None and row.get("forget_nll", float("-inf")) > bound:
            stop_reason = f"forget NLL {row['forget_nll']:.3g} > stop.forget_nll_above={bound}"
            break
    bar.close()
    return step, stop_reason


def apart_groups(objective: Objective, sam_rho: float) -> dict[str, tuple[str, ...]]:
    """Terms whose gradients micro_steps keeps apart from .grad, by group: SAM's forget terms
    (train.sam_rho > 0) and each rectifying term (gru). Empty for plain recipes."""
    groups = {w.term.name: (w.term.name,) for w in objective.rectifying}
    if sam_rho > 0:
        groups["sam"] = sam.forget_terms(objective)
    return groups


def micro_steps(
    state: TrainState, step: int, only: tuple[str, ...] | None = None
) -> tuple[dict[str, float], int, str | None]:
    """Forward and backward over grad_accum micro-batches: (summed values, tokens, failure).

    The gradients of state.apart's groups go to state.apart_grads, the others' to .grad.
    only: run just these terms, all into .grad (SAM's pass at the perturbed weights).
    """
    t, acc = state.cfg.train, state.accelerator
    accum = t.grad_accum
    groups = state.apart if only is None else {}
    kept = {n for names in groups.values() for n in names}
    update_terms = tuple(w.term.name for w in state.objective.terms if w.term.name not in kept)
    # One forward over all splits (context.py): under bf16 it saves the per-split weight copies,
    # and in any precision its matmuls are twice as tall (fp32 graddiff LoRA step 11 % faster).
    running = [w for w in state.objective.terms if only is None or w.term.name in only]
    together = tuple(sorted({s for w in running for s in w.term.splits}))
    sums: dict[str, float] = defaultdict(float)
    tokens = 0
    for micro in range(accum):
        micro_step = step * accum + micro
        torch.manual_seed(t.seed + micro_step)  # dropout identical on resume
        ctx = StepContext(
            state.model,
            lambda split, m=micro_step: state.data.batch(split, m),
            state.reference_forward,
            acc.autocast,
            acc.device,
        )
        ctx.together = together
        # With gradients kept apart, every backward stays local and adjust_gradients averages
        # the gradients over processes once (DDP allows one synchronised backward per forward).
        local = micro < accum - 1 or bool(state.apart)
        with acc.no_sync(state.model) if local else nullcontext():
            loss, values = state.objective(ctx, only)
            parts = {g: state.objective.weighted(values, names) for g, names in groups.items()}
            ok = all(torch.isfinite(torch.as_tensor(v)).all() for v in [loss, *parts.values()])
            ok = torch.tensor(float(ok), device=acc.device)
            if acc.reduce(ok, "sum").item() < acc.num_processes:
                return sums, tokens, "non-finite loss"
            update = loss
            if groups:
                backward_apart(state, parts, accum)
                update = state.objective.weighted(values, update_terms)
            if torch.is_tensor(update) and update.requires_grad:
                acc.backward(update / accum)
        sums["loss"] += loss.item() / accum
        if only is not None:  # the perturbed pass logs only its loss
            continue
        for name, value in values.items():
            sums[name] += value.item() / accum
        if "forget" in ctx.computed and ctx.computed["forget"].has_logits:  # not for RMU's early exit
            sums["forget_nll"] += ctx.computed["forget"].mean_nll.mean().item() / accum
        tokens += ctx.tokens
    return sums, tokens, None


def backward_apart(state: TrainState, parts: dict[str, torch.Tensor], accum: int) -> None:
    """Each part's gradient (divided by accum) added to state.apart_grads[group], .grad left as
    it was: backward into swapped-in .grad tensors (torch.autograd.grad would not run through
    reentrant gradient checkpointing)."""
    params, kept = state.params, state.apart_grads
    update = [p.grad for p in params]
    for group, part in parts.items():
        for p, g in zip(params, kept.get(group) or [None] * len(params)):
            p.grad = g
        if torch.is_tensor(part) and part.requires_grad:
            state.accelerator.backward(part / accum, retain_graph=True)
        kept[group] = [p.grad for p in params]
    for p, g in zip(params, update):
        p.grad = g


def adjust_gradients(state: TrainState, step: int, sums: dict[str, float]) -> str | None:
    """The step's gradient hook, between the backward passes and the clip, for objectives that
    keep gradients apart (plain recipes never come here). SAM (train.sam_rho): the forget terms'
    gradient again at w + rho * g/|g|, added to .grad; then each rectifying term (gru) rewrites
    .grad given its own gradient. Returns a failure, or None."""
    acc, params, kept = state.accelerator, state.params, state.apart_grads
    state.apart_grads = {}
    for grads in kept.values():
        _mean_grads_over_processes(acc, grads)
    if "sam" in kept:
        terms = state.objective.state  # the pass at w's term state counts (pdu's dual), not this one's
        saved = {name: dict(terms.get(name, {})) for name in state.apart["sam"]}
        with sam.perturbed(params, kept.pop("sam"), state.cfg.train.sam_rho):
            again, _, failure = micro_steps(state, step, only=state.apart["sam"])
        terms.update(saved)
        if failure is not None:
            return f"{failure} at the SAM-perturbed weights"
        sums["sam_loss"] = again["loss"]
    _mean_grads_over_processes(acc, [p.grad for p in params])
    update = [p.grad for p in params]
    sums.update(state.objective.rectify(update, kept))
    for p, g in zip(params, update):
        p.grad = g
    return None


def _mean_grads_over_processes(accelerator: Accelerator, grads: list[torch.Tensor | None]) -> None:
    if accelerator.num_processes > 1:  # not run here: it needs a process group
        for g in grads:
            if g is not None:
                g.copy_(accelerator.reduce(g, "mean"))


def log_row(state: TrainState, row: dict[str, Any], bar, loss_keys: list[str]) -> None:
    state.history.append(row)
    if state.accelerator.is_main_process:
        with open(state.history_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        shown = [k for k in row if k.startswith("val_")] or loss_keys
        bar.set_postfix({k: f"{row[k]:.3g}" for k in shown}, refresh=False)
        bar.update(1)


def save(state: TrainState, step: int, stop_reason: str) -> RunResult:
    """Restore the kept step, save the model files and finish the manifest."""
    cfg, acc, run_dir = state.cfg, state.accelerator, state.run_dir
    selection = state.keeper.restore(state.unwrapped, step)  # before anything is saved
    post_phase = state.objective.after_training(RunContext(state.unwrapped, original=original_weights(cfg)))
    if post_phase:  # e.g. task-vector negation, done to the kept weights before they are saved
        state.manifest.post_phase = post_phase
    acc.wait_for_everyone()
    return_freed_memory()  # the last step's activations, before saving maps a merged model
    # FSDP / ZeRO-3 hold a shard per rank: every rank takes part in gathering the full state
    # dict (accelerate's get_state_dict), which the main process saves; a LoRA merge then
    # reloads the source and the saved adapter instead of merging sharded weights in place.
    # (FSDP2 is tested on CPU with two gloo processes, tests/test_distributed.py; ZeRO-3 is not.)
    state_dict = acc.get_state_dict(state.model) if sharded(acc) else None
    if acc.is_main_process:
        merge_from = state.source.path if state.frozen_bf16 or sharded(acc) else None
        try:
            outputs = save_outputs(
                cfg, run_dir, state.unwrapped, state.source.tokenizer, merge_from, state_dict
            )
        except OSError as exc:  # e.g. a full disk: say so in the manifest and the message
            raise save_failed(run_dir, state.manifest, exc) from None
        state.manifest.update(
            {
                "status": "finished",
                "finished": now(),
                "steps": step,
                "stop_reason": stop_reason,
                "selection": selection,
                "final": state.history[-1] if state.history else None,
                "cost": {"peak_rss_bytes": peak_rss_bytes(), "peak_gpu_memory_bytes": peak_gpu_bytes()},
                "outputs": outputs,
            }
        )
        write_manifest(run_dir, state.manifest)
    return RunResult(run_dir=run_dir, steps=step, stop_reason=stop_reason, history=state.history)


def check_sharded_support(accelerator: Accelerator, cfg: RunConfig, objective: Objective) -> None:
    """What does not work on sharded weights yet fails here, before any model loads."""
    if not sharded(accelerator):
        return
    unsupported = []
    if cfg.train.mask.saliency is not None:  # its gradient hooks sit on the unsharded tensors
        unsupported.append("train.mask.saliency")
    if apart_groups(objective, cfg.train.sam_rho):  # kept-apart gradients are not sharded-aware
        unsupported.append("train.sam_rho > 0 or a rectifying term (gru)")
    if unsupported:
        raise ConfigError(
            f"{' and '.join(unsupported)} do not work with FSDP / ZeRO-3 yet; drop them or launch "
            "without sharding (DDP: examples/accelerate/ddp.yaml)"
        )


def sharded(accelerator: Accelerator) -> bool:
    """FSDP / ZeRO-3: each rank holds a shard of the weights, so saving is a collective."""
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def original_weights(cfg: RunConfig) -> Callable[[], dict[str, torch.Tensor]]:
    """theta_0 for an after_training hook, reloaded from the source only if the hook asks."""
    return lambda: load_model(cfg.model.name, revision=cfg.model.revision).model.state_dict()


def _mean_over_processes(accelerator: Accelerator, sums: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1:
        return dict(sums)
    keys = sorted(sums)
    values = torch.tensor([sums[k] for k in keys], device=accelerator.device)
    values = accelerator.reduce(values, "mean")
    return dict(zip(keys, values.tolist()))


def check_data(cfg: RunConfig) -> None:
    """Read every configured data file, so bad input fails before the model loads."""
    forget_cfg, retain_cfg = datasets(cfg)
    read_records(forget_cfg, "forget")
    if retain_cfg is not None:
        read_records(retain_cfg, "retain")
    if cfg.data.heldout is not None:
        read_records(cfg.data.heldout, "heldout")


__all__ = ["RunResult", "TrainState", "train", "setup", "run_loop", "save", "check_data", "DataError"]
