"""Typed run configuration: YAML file + `--set key=value` overrides, validated with clear messages."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lm_unlearn.errors import ConfigError

DEFAULT_MODEL = "builtin:smollm2-135m-instruct"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(Strict):
    name: str = Field(DEFAULT_MODEL, description="Local HF directory, hub id, .gguf file or builtin:NAME.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(
        False,
        description="Run model code shipped with the checkpoint. Only the command line's "
        "--trust-remote-code sets it; a saved `true` without that flag is refused.",
    )
    template: Literal["auto", "chat", "plain"] = Field(
        "auto",
        description="Prompt format: the tokenizer's chat template ('chat'), "
        "'### Question: ... ### Answer: ' ('plain'), or chat when the tokenizer has one ('auto').",
    )
    system_prompt: str | None = Field(
        None, description="System message for chat templates; None keeps the template's default."
    )


class DatasetConfig(Strict):
    path: str = Field(description="JSONL/JSON/CSV/Parquet file, or hf:NAME for a `datasets` name.")
    split: str = Field("train", description="Split, for hf: names.")
    subset: str | None = Field(None, description="Configuration name, for hf: names.")
    prompt_field: str = "prompt"
    response_field: str = "response"
    text_field: str = Field("text", description="Field of raw-text records (no prompt).")
    limit: int | None = Field(None, ge=1, description="Use only the first N records.")


class DataConfig(Strict):
    forget: DatasetConfig | None = Field(None, description="What must go. None: the built-in demo.")
    retain: DatasetConfig | None = Field(None, description="Normal data to protect.")
    heldout: DatasetConfig | None = Field(None, description="Forget-like data never trained on.")
    requests: list[DatasetConfig] | None = Field(
        None,
        description="Sequential unlearning: forget sets applied one after another, each starting from "
        "the previous result (replaces data.forget).",
    )
    refusals: str | None = Field(
        None, description="Text file of refusal answers, one per line, for idk/dpo (default: built-in)."
    )
    max_length: int = Field(256, ge=8, description="Longest tokenised example.")
    overlong: Literal["truncate", "error"] = Field(
        "truncate", description="Examples longer than max_length: cut with a warning, or refuse."
    )


class LoraConfig(Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = Field("all-linear", description="peft target_modules.")


class MaskConfig(Strict):
    """Which parameters may change (masks.py); empty: all trainable ones."""

    params: list[str] = Field(
        default_factory=list, description="Regular expressions; a tensor trains if its name matches one."
    )
    layers: list[int] = Field(default_factory=list, description="Decoder-layer indices whose tensors train.")
    saliency: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Within the chosen tensors, train only this fraction of entries per tensor: those "
        "with the largest |gradient of the forget NLL| at the start (SalUn/WAGLE). Needs mode=full.",
    )
    saliency_examples: int | None = Field(
        None, ge=1, description="Forget examples used for the saliency gradient (default: all)."
    )


class StopConfig(Strict):
    forget_nll_above: float | None = Field(
        None, description="Stop once the forget set's mean NLL exceeds this (Yao et al. stop rule)."
    )


class ValidationConfig(Strict):
    """Small splits held out from the forget and retain data, measured during training.

    They are never trained on and never evaluated on: the run's evaluation leaves them out.
    """

    forget: int | None = Field(
        None, ge=0, description="Forget records held out for validation (None: 1/6 of them, at most 4)."
    )
    retain: int | None = Field(
        None, ge=0, description="Retain records held out for validation (None: 1/6 of them, at most 8)."
    )
    generate: bool = Field(
        True,
        description="Also generate greedy answers on the validation prompts: the judge rate on forget "
        "prompts and the ROUGE-L of retain answers against the original's.",
    )
    max_new_tokens: int = Field(32, ge=1, le=512, description="Tokens per validation answer.")
    judge_patterns: list[str] = Field(
        default_factory=list,
        description="Regexes that mark a validation answer as still showing the forget data (keyword "
        "judge). Empty: the demo's patterns for the demo, else no judge rate.",
    )


class TargetConfig(Strict):
    """What 'forgotten' and 'kept' mean; the run stops when the forget target is met.

    Nothing set: no target (the demo alone defaults to judge_rate_max 0, see RunConfig).

    All given forget conditions must hold at a validation step for the target to be met; a
    utility bound that is crossed stops the run, and the best validated step is kept
    (the selection rule is in `lm_unlearn.validation.select_step` and in the manifest).
    """

    forget_nll: float | Literal["heldout"] | None = Field(
        None,
        description="Forget-validation NLL at least this; 'heldout': the original model's NLL on "
        "data.heldout (the level of data it never learned).",
    )
    judge_rate_max: float | None = Field(
        None, ge=0, le=1, description="Share of forget-validation answers the judge flags, at most this."
    )
    retain_kl_max: float | None = Field(
        None, gt=0, description="Utility bound: mean KL(original || model) on retain validation."
    )
    retain_similarity_min: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Utility bound: ROUGE-L F1 of retain-validation answers against the original's.",
    )

    def forget_conditions(self) -> list[str]:
        return [n for n in ("forget_nll", "judge_rate_max") if getattr(self, n) is not None]

    def utility_bounds(self) -> list[str]:
        return [n for n in ("retain_kl_max", "retain_similarity_min") if getattr(self, n) is not None]


class TrainConfig(Strict):
    mode: Literal["lora", "full"] = Field("lora", description="Train LoRA adapters or all weights.")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(2, ge=1, description="Forget examples per micro-batch per process.")
    retain_batch_size: int | None = Field(None, ge=1, description="Defaults to batch_size.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_steps: int = Field(40, ge=1, description="Optimizer steps.")
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="bf16 autocast where the hardware supports it ('auto'), or force one."
    )
    frozen_dtype: Literal["auto", "bf16", "fp32"] = Field(
        "auto",
        description="Storage of frozen Linear weights (the LoRA base; full mode's live reference copy). "
        "'bf16' gives the same matmuls as bf16 autocast, which casts them anyway, at half the memory "
        "and without the cast copies kept for backward; needs precision bf16. 'auto': bf16 when the "
        "run's precision is bf16.",
    )
    seed: int = 0
    checkpoint_every: int = Field(0, ge=0, description="Save a resumable checkpoint every N steps.")
    gradient_checkpointing: bool = False
    stop: StopConfig = Field(default_factory=StopConfig)
    eval_every: int = Field(
        5, ge=0, description="Measure the validation splits every N steps (0: no validation, no split)."
    )
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)
    reference: Literal["auto", "live", "precompute"] = Field(
        "auto",
        description="Original-model values for terms that compare with it: run the original on each "
        "batch ('live'; a frozen copy in full mode) or compute them once before training and cache "
        "them ('precompute'; no second model in memory). 'auto': precompute when every such term "
        "reads only response log-probs (npo, dpo, ...: a few numbers per example, the same values, "
        "one forward per example instead of one per step), live otherwise (kl, rmu, whp, ...).",
    )
    mask: MaskConfig = Field(default_factory=MaskConfig, description="Restrict updates to some parameters.")
    sam_rho: float = Field(
        0.0,
        ge=0,
        description="Sharpness-aware unlearning (Fan et al. 2025) on top of any recipe: the forget terms' "
        "gradient is taken at w + sam_rho * g/|g| (g: their gradient at w) and applied at w; retain-only "
        "terms stay at w. 0: off. Costs a second forward and backward of the forget terms per step.",
    )


class SaveConfig(Strict):
    merge: bool = Field(True, description="LoRA: also save the merged full model to model/.")


class UndoConfig(Strict):
    """Settings of the `undo` procedure (Lee et al. 2025; `lm_unlearn.methods.undo`): unlearn with
    `base`, noise a copy of the weights, then distil the unlearned model into it."""

    base: str = Field("npo+rt", description="Recipe of the unlearn phase (the teacher).")
    objective: dict[str, float | dict[str, Any]] | None = Field(
        None, description="Weighted terms of the unlearn phase instead of `base`'s."
    )
    student_from: Literal["unlearned", "original"] = Field(
        "unlearned",
        description="Whose weights are noised into the student: the unlearned model (the paper) or "
        "the original model.",
    )
    alpha: float = Field(0.3, ge=0, le=1, description="Noise strength: 0 keeps the weights, 1 is pure noise.")
    beta: float = Field(0.1, ge=0, description="Scale of the noise mixed in.")
    sigma: float | None = Field(
        None, gt=0, description="Std of the noise (None: the model's initializer_range, else 0.02)."
    )
    seed: int | None = Field(None, description="Seed of the noise (None: train.seed).")
    distill_steps: int | None = Field(
        None, ge=1, description="Steps of the distil phase (None: train.max_steps)."
    )
    distill_lr: float | None = Field(
        None, gt=0, description="Learning rate of the distil phase (None: train.lr)."
    )
    distill_texts: int = Field(
        64,
        ge=0,
        description="Texts the teacher samples from its start token, distilled on beside the retain "
        "records (the paper's general corpus; 0: retain and forget text only).",
    )
    distill_text_tokens: int = Field(64, ge=1, description="Tokens per sampled text.")


# Upper bounds on sizes, far above any real run, so that a typo (batch_size=1e12) is an error
# naming the setting instead of an allocation failure deep inside torch.
SIZE_LIMITS = {
    "train.batch_size": 1 << 16,
    "train.retain_batch_size": 1 << 16,
    "train.grad_accum": 1 << 16,
    "train.max_steps": 1 << 24,  # 16.8 M optimizer steps: far past any unlearning run
    "train.lora.r": 1 << 14,
    "data.max_length": 1 << 20,
}


class RunConfig(Strict):
    name: str | None = Field(None, description="Run directory name under output_dir.")
    output_dir: str = "runs"
    method: str | None = Field(None, description="A named recipe (see `unlearn methods`).")
    objective: dict[str, float | dict[str, Any]] | None = Field(
        None,
        description="Weighted terms, e.g. {ga: 0.5, mismatch: 1.0, kl: 1.0}; a term may be "
        "{weight: w, <param>: value}. Overrides the recipe's objective.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    save: SaveConfig = Field(default_factory=SaveConfig)
    undo: UndoConfig | None = Field(None, description="Settings of method=undo (None: its defaults).")
    evaluate: bool = Field(
        True, description="After training, evaluate the model against the original: eval.json, report.html."
    )
    redact: bool = Field(
        False,
        description="The automatic evaluation's eval.json and report.html hold placeholders instead "
        "of forget-side text (and its cache keeps scores only), as `unlearn eval --redact`.",
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        if name is not None:
            check_plain_name(name, "name")
        return name

    @model_validator(mode="after")
    def _bounded(self) -> RunConfig:
        for key, limit in SIZE_LIMITS.items():
            value: Any = self
            for part in key.split("."):
                value = getattr(value, part)
            if value is not None and value > limit:
                raise ValueError(
                    f"{key}={truncate(value, 40)} is beyond any real run (at most {limit}); check the value"
                )
        return self

    @model_validator(mode="after")
    def _method_or_objective(self) -> RunConfig:
        if self.method is None and self.is_demo() and self._tweaks_demo_recipe():
            self._use_demo_recipe()
        elif self.method is None and self.objective is None:
            self.method = "yao"
        if self.objective is None:
            from lm_unlearn.objectives.registry import recipe_train_settings

            for key, value in recipe_train_settings(self.method).items():  # rmu: mode=full; sam: sam_rho
                if key not in self.train.model_fields_set:
                    setattr(self.train, key, value)
        return self

    def is_demo(self) -> bool:
        return self.data.forget is None and self.data.requests is None

    def _tweaks_demo_recipe(self) -> bool:
        """No objective, or one that only sets parameters of the demo recipe's own terms (e.g.
        `--set objective.rmu.alpha=400`): the demo recipe, with those parameters changed."""
        demo_terms = DEMO_RECIPE["objective"]
        given = self.objective or {}
        return all(name in demo_terms and isinstance(spec, dict) for name, spec in given.items())

    def _use_demo_recipe(self) -> None:
        """The demo without a method: DEMO_RECIPE with the user's term parameters over its own,
        and its training settings where the user set none."""
        given = self.objective or {}
        self.method = DEMO_RECIPE["method"]
        self.objective = {
            name: {**spec, **given.get(name, {})} for name, spec in DEMO_RECIPE["objective"].items()
        }
        for key, value in DEMO_RECIPE["train"].items():
            if key not in self.train.model_fields_set:
                setattr(self.train, key, value)

    @model_validator(mode="after")
    def _demo_target(self) -> RunConfig:
        """The demo (no forget data given) stops once no held-out Harry Potter answer names the
        series (its judge's patterns), unless a target is set; user data has no judge by default."""
        target = self.train.target
        if (
            self.is_demo()
            and self.train.eval_every
            and not (target.forget_conditions() or target.utility_bounds())
        ):
            target.judge_rate_max = 0.0
        return self


# The demo's recipe when no method is given (`make demo`, `unlearn run`): RMU on the MLP
# down-projections of layers 5-7, its forget term on the tokens forget and retain prompts do not
# share, with the steering coefficient and retain weight for SmolLM2-135M's activations (median
# token norm ~120 at layer 7, so c = 500; alpha = 400: the validation retain KL of alpha 200 at
# a third, at the same validation judge rate), validated every 20 steps (a validation costs
# about 20 of RMU's short steps). Chosen from the validation splits' signals in a sweep of
# recipes on the demo data; see docs/tuning.md. With your own data the default stays `yao`.
DEMO_RECIPE: dict[str, Any] = {
    "method": "rmu",
    "objective": {"rmu": {"steering_coef": 500.0, "alpha": 400.0}},
    "train": {"mode": "full", "lr": 1e-3, "max_steps": 80, "eval_every": 20},
}


def check_plain_name(name: str, what: str) -> None:
    """A name that becomes one directory or file name: no separators, no '..', no control
    characters, so it cannot point outside the directory it is put in. The message leaves the
    name to the caller (a validation message shows it already)."""
    bad = (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or len(name) > 200
    )
    if bad:
        raise ValueError(
            f"{what} must be one plain file name (no '/', '\\', '..' or control characters, at "
            "most 200 characters)"
        )


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set train.lr=1e-5")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


# A few items of a few levels: YAML aliases can make 400 bytes a list whose full repr has tens
# of gigabytes, so a message must never build it, not even to cut it.
SHORT_REPR = reprlib.Repr()
SHORT_REPR.maxlevel = 3
SHORT_REPR.maxstring = SHORT_REPR.maxother = 80


def short_repr(value: Any, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters, built from a few items of a few levels only."""
    text = SHORT_REPR.repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def truncate(value: Any, limit: int = 80) -> str:
    """A string, or the repr of anything else, cut to `limit` characters so a message stays a
    message."""
    if not isinstance(value, str):
        return short_repr(value, limit)
    return value if len(value) <= limit else f"{value[: limit - 20]}... ({len(value)} chars)"


MAX_ERRORS_SHOWN = 12


def format_validation_error(exc: ValidationError, source: str) -> str:
    errors = exc.errors()
    lines = [f"invalid configuration ({truncate(source, 200)}):"]
    for err in errors[:MAX_ERRORS_SHOWN]:
        where = truncate(".".join(str(p) for p in err["loc"]) or "(top level)")
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {short_repr(got)})"
        lines.append(f"  {where}: {truncate(err['msg'], 200)}{shown}")
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more")
    return "\n".join(lines)


def read_yaml_mapping(path: str | Path, what: str, expected: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file: {}); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be {expected}")
    return loaded or {}


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, *, trust_remote_code: bool = False
) -> RunConfig:
    """Read a YAML config (or none: all defaults), apply `--set` overrides, validate.

    trust_remote_code: the user's --trust-remote-code flag; see `validate_config`.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path, "config file", "a mapping of settings")
    if overrides:
        data = apply_overrides(data, list(overrides))
    return validate_config(data, config_source(path, overrides), trust_remote_code=trust_remote_code)


def config_source(path: str | Path | None, overrides: list[str] | None) -> str:
    """Where a config came from, for error messages: 'my.yaml + --set', 'defaults', ..."""
    return ("defaults" if path is None else str(path)) + (" + --set" if overrides else "")


def validate_config(
    data: dict[str, Any], source: str = "config", *, trust_remote_code: bool = False
) -> RunConfig:
    """Validate a config mapping.

    Config files and run directories are not trusted to run code: a `model.trust_remote_code`
    that is true in `data` is refused unless the caller passes the user's explicit
    `trust_remote_code` flag, which then sets it.
    """
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    if cfg.model.trust_remote_code and not trust_remote_code:
        raise ConfigError(
            f"{source}: model.trust_remote_code is true, but code shipped with a model runs only "
            f"when you pass --trust-remote-code on the command line, on each invocation; pass it "
            f"if you trust the code in {truncate(cfg.model.name)}"
        )
    cfg.model.trust_remote_code = trust_remote_code
    return cfg
