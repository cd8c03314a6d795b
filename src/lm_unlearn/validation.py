"""Validation during training: cheap signals on held-out splits, the target, and the kept step.

Every `train.eval_every` steps the run measures, on small splits held out from its forget and
retain data (never trained on, never evaluated on):
  val_forget_nll     mean per-token NLL of the forget-validation answers (higher: more forgotten)
  val_judge_rate     share of greedy forget-validation answers the keyword judge flags
  val_retain_nll     mean per-token NLL of the retain-validation answers
  val_retain_kl      mean over answers of the per-token KL(original || model) on retain validation
  val_retain_similarity  mean ROUGE-L F1 of greedy retain-validation answers against the original's
The target (`train.target`) says what forgotten and kept mean; `select_step` picks the step to
keep from the validated rows, and the run stops once that choice can no longer change.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

import torch

from lm_unlearn.config import RunConfig, TargetConfig, TrainConfig, ValidationConfig
from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.errors import ConfigError
from lm_unlearn.evaluation.generation import autocast_for, generate
from lm_unlearn.manifest import records_digest

log = logging.getLogger(__name__)

DEFAULT_SHARE = 6  # a default split takes 1/6 of the records ...
DEFAULT_CAP = {"forget": 4, "retain": 8}  # ... and at most this many


def hold_out(records: list[Record], size: int | None, role: str, seed: int) -> tuple[list, list]:
    """(records to train on, validation records): a seeded random `size` of them held out."""
    n = len(records)
    if size is None:
        size = min(DEFAULT_CAP[role], n // DEFAULT_SHARE)
    if size and size >= n:
        raise ConfigError(
            f"train.validation.{role}={size} would leave no {role} record to train on "
            f"(the {role} data has {n}); use a smaller split or train.eval_every=0"
        )
    held = set(random.Random(f"{seed}-{role}").sample(range(n), size))
    return [r for i, r in enumerate(records) if i not in held], [
        r for i, r in enumerate(records) if i in held
    ]


def split_for_validation(t: TrainConfig, forget: list[Record], retain: list[Record] | None):
    """(forget to train on, forget validation, retain to train on, retain validation)."""
    if t.eval_every == 0:
        return forget, [], retain, []
    forget, forget_val = hold_out(forget, t.validation.forget, "forget", t.seed)
    retain_val: list[Record] = []
    if retain:
        retain, retain_val = hold_out(retain, t.validation.retain, "retain", t.seed)
    return forget, forget_val, retain, retain_val


def record_digests(records: list[Record]) -> list[str]:
    """One content digest per record: what the evaluation leaves out, without the text itself."""
    return [records_digest([r]) for r in records]


@dataclass
class Validator:
    """Measures the validation signals; `baseline` must run on the original model first."""

    forget: list[Record]
    retain: list[Record]
    fmt: PromptFormat
    cfg: ValidationConfig
    max_length: int
    precision: str
    judge_patterns: list[str] = field(default_factory=list)
    heldout: list[Record] = field(default_factory=list)
    original_logprobs: list[torch.Tensor] = field(default_factory=list)  # retain, [T_i, V] each
    original_answers: list[str] = field(default_factory=list)
    baseline_values: dict[str, float] = field(default_factory=dict)
    _encoded: dict[int, list] = field(default_factory=dict, repr=False)  # id(records) -> examples
    _judge: Any = field(default=None, repr=False)

    def baseline(self, model) -> dict[str, float]:
        """The original model's values; keeps its retain distributions and answers to compare."""
        self.baseline_values = self.measure(model, keep_original=True)
        if self.heldout:
            nll, _ = self._nll(model, self.heldout)
            self.baseline_values["heldout_nll"] = nll
        log.info("validation baseline (original model): %s", _short(self.baseline_values))
        return self.baseline_values

    @torch.no_grad()
    def measure(self, model, keep_original: bool = False) -> dict[str, float]:
        was_training = model.training
        model.eval()  # dropout off: the signals are deterministic
        values: dict[str, float] = {}
        if self.forget:
            values["val_forget_nll"], _ = self._nll(model, self.forget)
        if self.retain:
            nll, kl = self._nll(model, self.retain, with_kl=not keep_original, keep=keep_original)
            values["val_retain_nll"] = nll
            if kl is not None:
                values["val_retain_kl"] = kl
        if self.cfg.generate:
            values |= self._generated(model, keep_original)
        model.train(was_training)
        return values

    def _generated(self, model, keep_original: bool) -> dict[str, float]:
        from lm_unlearn.evaluation import text_metrics as tm
        from lm_unlearn.evaluation.judges import KeywordJudge

        values: dict[str, float] = {}
        forget = self.forget if self.judge_patterns else []
        # One generate call for both splits: a CPU decode step reads every weight whatever the
        # batch, so 4 + 8 prompts in one batch cost little more than 4 alone.
        answers = self._answers(model, forget + self.retain)
        if forget:
            self._judge = self._judge or KeywordJudge(self.judge_patterns)  # compiled once
            flags = self._judge.scores(answers[: len(forget)])
            values["val_judge_rate"] = sum(flags) / len(flags)
        if self.retain:
            answers = answers[len(forget) :]
            if keep_original:
                self.original_answers = answers
            sims = [tm.rouge_l(a, o)[2] for a, o in zip(answers, self.original_answers)]
            values["val_retain_similarity"] = sum(sims) / len(sims)
        return values

    def _answers(self, model, records: list[Record]) -> list[str]:
        if not records:
            return []
        out = generate(
            model,
            self.fmt.tokenizer,
            [self.fmt.prompt_text(r.prompt) for r in records],
            add_special_tokens=self.fmt.kind != "chat",
            max_new_tokens=self.cfg.max_new_tokens,
            precision=self.precision,
        )
        return out.texts

    @torch.no_grad()  # also for the held-out baseline, measured outside `measure`
    def _nll(self, model, records, with_kl: bool = False, keep: bool = False) -> tuple[float, float | None]:
        """Mean per-token NLL over response tokens (and mean KL(original || model) per answer)."""
        device = next(model.parameters()).device
        if id(records) not in self._encoded:  # tokenised once, measured every eval_every steps
            self._encoded[id(records)] = encode_records(records, self.fmt, self.max_length)
        examples = self._encoded[id(records)]
        nll_sum, count, kls = 0.0, 0, []
        for start in range(0, len(examples), 8):
            chunk = examples[start : start + 8]
            batch = collate(chunk, self.fmt.tokenizer.pad_token_id).to(device)
            with autocast_for(model, self.precision):
                logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = batch.labels[:, 1:]
            mask = targets != -100
            token_lp = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            nll_sum -= float(token_lp[mask].sum())
            count += int(mask.sum())
            for row in range(len(chunk)):
                answer = logp[row][mask[row]]  # [T_i, V]
                if keep:
                    self.original_logprobs.append(answer.cpu())
                if with_kl:
                    q = self.original_logprobs[start + row].to(device)
                    kls.append(float((q.exp() * (q - answer)).sum(-1).mean()))
        kl = sum(kls) / len(kls) if with_kl and kls else None
        return nll_sum / max(count, 1), kl


def _short(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in values.items())


def check_target(target: TargetConfig, every: int, validator: Validator | None) -> None:
    """A target that cannot be computed is an error naming what is missing."""
    wanted = target.forget_conditions() + target.utility_bounds()
    if not wanted:
        return
    if every == 0 or validator is None:
        raise ConfigError(f"train.target ({', '.join(wanted)}) needs validation: set train.eval_every > 0")
    needs = {
        "forget_nll": (bool(validator.forget), "a forget validation split (train.validation.forget > 0)"),
        "judge_rate_max": (
            bool(validator.forget and validator.judge_patterns and validator.cfg.generate),
            "a judge (train.validation.judge_patterns), generation and a forget validation split",
        ),
        "retain_kl_max": (bool(validator.retain), "a retain validation split (data.retain)"),
        "retain_similarity_min": (
            bool(validator.retain and validator.cfg.generate),
            "a retain validation split and train.validation.generate",
        ),
    }
    for name in wanted:
        ok, what = needs[name]
        if not ok:
            raise ConfigError(f"train.target.{name} cannot be computed: it needs {what}")
    if target.forget_nll == "heldout" and not validator.heldout:
        raise ConfigError(
            "train.target.forget_nll=heldout needs data.heldout (forget-like data never learned)"
        )


def forget_threshold(target: TargetConfig, baseline: dict[str, float]) -> float | None:
    if target.forget_nll == "heldout":
        return baseline["heldout_nll"]
    return target.forget_nll


def forget_met(row: dict, target: TargetConfig, baseline: dict[str, float]) -> bool:
    nll_bound = forget_threshold(target, baseline)
    if nll_bound is not None and row["val_forget_nll"] < nll_bound:
        return False
    return target.judge_rate_max is None or row["val_judge_rate"] <= target.judge_rate_max


def within_bounds(row: dict, target: TargetConfig) -> bool:
    if target.retain_kl_max is not None and row["val_retain_kl"] > target.retain_kl_max:
        return False
    return (
        target.retain_similarity_min is None or row["val_retain_similarity"] >= target.retain_similarity_min
    )


def forgetting(row: dict) -> tuple[float, float]:
    """Larger is more forgotten: fewer judged answers first, then a higher forget NLL."""
    return (-row.get("val_judge_rate", 0.0), row.get("val_forget_nll", 0.0))


@dataclass
class Choice:
    step: int
    rule: str
    reason: str
    stop: bool = False  # no later step can change the choice


def select_step(rows: list[dict], target: TargetConfig, baseline: dict[str, float]) -> Choice | None:
    """The step to keep among validated rows (step 0, the original, is never kept).

    1. The first step that meets the forget target within the utility bounds (least change
       that does the job); the run stops there.
    2. Else, of the steps within the bounds, the one that forgot most (lowest judge rate, then
       highest forget NLL); with a forget target the run goes on, since a later step may meet it.
    3. Else (every step crossed a bound) the first validated step, the least changed.
    Without any target the last step is kept. A crossed utility bound stops the run.
    """
    rows = [r for r in rows if r["step"] > 0 and any(k.startswith("val_") for k in r)]
    if not rows:
        return None
    last = rows[-1]
    conditions, bounds = target.forget_conditions(), target.utility_bounds()
    if not conditions and not bounds:
        return Choice(last["step"], "last", "no target: the last step")
    crossed = bool(bounds) and not within_bounds(last, target)
    for row in rows:
        if conditions and forget_met(row, target, baseline) and within_bounds(row, target):
            why = f"first step that met the forget target ({', '.join(conditions)}) within the utility bounds"
            return Choice(row["step"], "first_met", why, stop=True)
    kept = [r for r in rows if within_bounds(r, target)]
    if kept:
        best = max(kept, key=forgetting)  # ties: the earliest
        why = "forget target not reached; the step that forgot most within the utility bounds"
        if not conditions:
            why = "no forget target; the step that forgot most within the utility bounds"
        return Choice(best["step"], "most_forgotten_within_bounds", why, stop=crossed)
    why = "every validated step crossed a utility bound; the first one, the least changed"
    return Choice(rows[0]["step"], "least_changed", why, stop=crossed)


class Keeper:
    """Holds a copy of the trainable weights at the chosen step, to restore before saving."""

    def __init__(self, target: TargetConfig, baseline: dict[str, float]):
        self.target, self.baseline = target, baseline
        self.rows: list[dict] = []
        self.choice: Choice | None = None
        self.kept: dict[str, torch.Tensor] | None = None
        self.kept_step: int | None = None

    def observe(self, row: dict, model) -> Choice | None:
        """Record a validated row; copies the weights when this step becomes the choice."""
        self.rows.append(row)
        self.choice = select_step(self.rows, self.target, self.baseline)
        if self.choice is not None and self.choice.step == row["step"] and self.choice.rule != "last":
            self.kept = {n: p.detach().to("cpu", copy=True) for n, p in _trainable(model)}
            self.kept_step = row["step"]
        return self.choice

    def restore(self, model, final_step: int) -> dict[str, Any]:
        """Put the chosen step's weights back; returns the manifest's `selection` block."""
        choice = self.choice
        if choice is None:
            return {"rule": "last", "step": final_step, "reason": "no validated step"}
        step = choice.step
        if choice.rule != "last" and step != final_step and self.kept_step == step and self.kept is not None:
            params = dict(_trainable(model))
            with torch.no_grad():
                for name, value in self.kept.items():
                    params[name].copy_(value)
            log.info("kept step %d (%s), not the last step %d", step, choice.reason, final_step)
        elif choice.rule != "last" and step != final_step:
            step = final_step  # the copy was lost (a resumed run): say so rather than pretend
            choice = Choice(step, "last", "the chosen step's weights were not kept across a resume")
        signals = next((r for r in self.rows if r["step"] == step), {})
        return {
            "rule": choice.rule,
            "step": step,
            "reason": choice.reason,
            "signals": {k: v for k, v in signals.items() if k.startswith("val_")},
            "baseline": self.baseline,
            "target": self.target.model_dump(mode="json", exclude_none=True),
        }


def _trainable(model):
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad)


def build_validator(
    cfg: RunConfig, fmt: PromptFormat, max_length: int, precision: str, records
) -> Validator | None:
    """The run's validator (None with eval_every 0), after checking its target can be computed.

    `records`: the run's TrainingRecords (validation splits and held-out data).
    """
    t = cfg.train
    if t.eval_every == 0:
        check_target(t.target, 0, None)
        return None
    patterns = t.validation.judge_patterns
    if not patterns and cfg.data.forget is None:  # the demo: the evaluation's own judge patterns
        from lm_unlearn.evaluation.config import DEMO_PATTERNS

        patterns = DEMO_PATTERNS
    heldout = records.heldout if t.target.forget_nll == "heldout" else []
    validator = Validator(
        records.forget_val, records.retain_val, fmt, t.validation, max_length, precision, patterns, heldout
    )
    check_target(t.target, t.eval_every, validator)
    return validator


def validation_entry(forget_val: list[Record], retain_val: list[Record]) -> dict[str, Any]:
    """The manifest's record of the validation splits (counts and content digests)."""
    return {
        role: {"records": len(recs), "content_sha256": records_digest(recs)}
        for role, recs in (("forget", forget_val), ("retain", retain_val))
        if recs
    }


def validation_digests(forget_val: list[Record], retain_val: list[Record]) -> dict[str, list[str]]:
    """validation.json: per-record digests, which the evaluation leaves out."""
    return {"forget": record_digests(forget_val), "retain": record_digests(retain_val)}
