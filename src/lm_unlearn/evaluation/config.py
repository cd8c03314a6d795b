"""Typed evaluation configuration: which data sets play which role, the judge, generation settings.

A data config is a small YAML file, e.g.::

    forget: {path: data/forget.jsonl}
    heldout: {path: data/heldout.jsonl}
    retain: {path: data/retain.jsonl, limit: 48}
    judge: {kind: keyword, patterns: ["(?i)hogwarts", "(?i)voldemort"]}
    max_new_tokens: 48
    redact: true
    verdict: {forget_judge_rate_max: 0.1, retain_rougeL_min: 0.7, unrelated_bleu_min: 0.5}

Roles left out fall back to the built-in demo sets only when `forget` is left out too
(the demo scenario); a user's own forget set never gets the demo's other sets mixed in.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from lm_unlearn.config import DatasetConfig, Strict, format_validation_error, read_yaml_mapping
from lm_unlearn.errors import ConfigError

BUILTIN = Path(__file__).parent / "builtin"

# Metric groups; `metrics` selects a subset so tests (and quick looks) stay fast.
GROUPS = ("generation", "likelihood", "extraction", "mia", "utility", "forget_quality")

# Names in the demo's forget set; the demo's default judge flags a generation that says any.
DEMO_PATTERNS = [
    r"(?i)\bharry\b",
    r"(?i)hogwarts",
    r"(?i)voldemort",
    r"(?i)hermione",
    r"(?i)weasley",
    r"(?i)dumbledore",
    r"(?i)rowling",
    r"(?i)gryffindor",
    r"(?i)hedwig",
    r"(?i)quidditch",
    r"(?i)\bsnape\b",
    r"(?i)muggle",
    r"(?i)dursley",
    r"(?i)gringotts",
    r"(?i)hagrid",
    r"(?i)horcrux",
    r"(?i)azkaban",
    r"(?i)dementor",
    r"(?i)hogsmeade",
    r"(?i)expelliarmus",
]


class JudgeConfig(Strict):
    """How a generation is judged undesirable (i.e. still shows forgotten knowledge)."""

    kind: Literal["none", "keyword", "classifier", "hf"] = Field(
        "none",
        description="'keyword': any regex in `patterns` matches; 'classifier': logistic regression on "
        "MiniLM sentence embeddings trained from `positive`/`negative` examples; 'hf': a Hugging Face "
        "sequence classifier at `model`; 'none': no judge.",
    )
    patterns: list[str] = Field(default_factory=list, description="Regexes (Python `re`), for 'keyword'.")
    positive: DatasetConfig | None = Field(
        None, description="Undesirable example texts, for 'classifier'. Default: the forget set's responses."
    )
    negative: DatasetConfig | None = Field(
        None, description="Acceptable example texts, for 'classifier'. Default: the retain set's responses."
    )
    model: str | None = Field(None, description="Local directory or hub id of a classifier, for 'hf'.")
    label: str | int = Field(1, description="'hf': the label name or index that means undesirable.")
    threshold: float = Field(0.5, ge=0, le=1, description="Score at or above which a text is undesirable.")


class VerdictConfig(Strict):
    """Thresholds of the report's verdict panel ("did it work?"); every value is a share in 0..1."""

    forget_judge_rate_max: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Forgotten when at most this share of forget answers is judged to still show the "
        "knowledge (forget.judge_rate); paraphrased prompts are held to the same bound.",
    )
    retain_rougeL_min: float = Field(
        0.70,
        ge=0,
        le=1,
        description="Model kept when normal answers match the original's at least this much "
        "(retain.rougeL_vs_original, ROUGE-L F1).",
    )
    unrelated_bleu_min: float = Field(
        0.50,
        ge=0,
        le=1,
        description="Unrelated answers kept when their BLEU against the original's is at least this "
        "(unrelated.bleu_vs_original).",
    )
    forget_quality_min: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Without a judge, forgotten when TOFU's forget quality (forget_quality.ks_pvalue: the "
        "KS-test p-value of the truth ratios against the retain-only model's) is at least this; 0.05: "
        "the two cannot be told apart at the 5 % level.",
    )
    privleak_abs_max: float | None = Field(
        None,
        ge=0,
        description="Privacy passes when |mia.privleak| (MUSE PrivLeak, 0 = as retrained) is at most "
        "this; None: privacy is shown but not judged.",
    )


LM_EVAL_INSTALL = "pip install 'lm-unlearn[lmeval]'"


def lm_eval_installed() -> bool:
    try:
        return find_spec("lm_eval") is not None
    except ValueError:  # sys.modules["lm_eval"] is None: import blocked
        return False


class LmEvalConfig(Strict):
    """lm-evaluation-harness tasks run on the model and the original as utility metrics
    (`utility.lm_eval.TASK.METRIC`); needs the optional `lmeval` extra."""

    tasks: list[str] = Field(
        min_length=1,
        description="lm-eval task, group or tag names (e.g. arc_easy), task YAML files, or directories "
        "of task YAML files (every task defined there; lm-eval's include_path). Paths are relative to "
        "the working directory, as are the `data_files` inside a task's YAML.",
    )
    include_path: list[str] = Field(
        default_factory=list,
        description="More directories of task YAML files whose tasks `tasks` may name.",
    )
    limit: int | None = Field(
        100, ge=1, description="The first N documents of each task (lm-eval's --limit); None: all."
    )
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples; None: each task's own.")
    batch_size: int = Field(8, ge=1, description="Requests per forward pass.")

    @model_validator(mode="after")
    def _installed(self) -> LmEvalConfig:
        # Checked here, before any model is loaded; a ConfigError passes through pydantic as is.
        if not lm_eval_installed():
            raise ConfigError(f"lm_eval.tasks needs lm-evaluation-harness, not installed: {LM_EVAL_INSTALL}")
        return self


class EvalConfig(Strict):
    forget: DatasetConfig | None = Field(None, description="The forgotten set. None: the built-in demo.")
    heldout: DatasetConfig | None = Field(None, description="Forget-like prompts never trained on.")
    paraphrased: DatasetConfig | None = Field(None, description="Forget prompts reworded ('hard in-scope').")
    retain: DatasetConfig | None = Field(None, description="Normal prompts whose behaviour must be kept.")
    unrelated: DatasetConfig | None = Field(None, description="Unrelated QA never used in training.")
    perturbed: DatasetConfig | None = Field(
        None,
        description="Truth-ratio questions (TOFU's perturbed files): `prompt`, `perturbed_answers` (wrong "
        "answers) and optionally `paraphrased_answer` (the true answer). None: each forget answer is "
        "scored against the answers of other forget questions.",
    )
    extraction: DatasetConfig | None = Field(
        None,
        description="Prefix (prompt) / true continuation (response) pairs for extraction; raw-text "
        "records are split in half by words. None: the forget responses, split in half.",
    )
    judge: JudgeConfig | None = Field(None, description="None: the demo's keyword judge for the demo.")
    lm_eval: LmEvalConfig | None = Field(
        None, description="lm-evaluation-harness tasks as utility metrics (with the `utility` group)."
    )
    template: Literal["auto", "chat", "plain"] = "auto"
    system_prompt: str | None = None
    metrics: list[Literal[GROUPS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(GROUPS), description=f"Metric groups to compute, from {GROUPS}."
    )
    max_new_tokens: int = Field(48, ge=1)
    stop: list[str] = Field(default_factory=list, description="Cut generations at the first of these.")
    batch_size: int = Field(
        128,
        ge=1,
        description="Prompts per generation batch (scoring uses half). A decode step's cost grows little "
        "with its rows (it reads every weight once), so few large batches beat many small ones: the demo's "
        "generation took 1.5x less time at 128 than at 32 on a 2-core CPU (docs/performance.md). Lower it "
        "for a large model on a small GPU: the KV cache grows with it.",
    )
    max_length: int = Field(256, ge=8, description="Longest sequence scored for likelihoods.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="bf16 autocast for forward passes where supported; log-probs are fp32."
    )
    min_k: float = Field(0.2, gt=0, le=1, description="Fraction k of lowest-probability tokens (Min-K%).")
    mia_grad_norm: int | None = Field(
        None,
        ge=0,
        description="Examples of the forget and of the held-out set (the first N of each) scored by the "
        "gradient-norm attack (mia.grad_norm): a backward pass over them per model (up to 1024 "
        "tokens a batch), so it is capped; 0 leaves the attack out. None: 32, or 8 for the demo "
        "(8 held-out questions; its backward passes would otherwise take a quarter of the demo's "
        "evaluation).",
    )
    rouge_stemmer: bool | None = Field(
        None,
        description="Porter-stem before ROUGE-L. None: as the forget set's source does: no stemming for "
        "MUSE (named in the scenario.json beside it), stemming otherwise (TOFU, open-unlearning).",
    )
    leak_threshold: float = Field(
        0.5, ge=0, le=1, description="Extraction counts as a leak when ROUGE-L F1 >= this."
    )
    cache_original: bool = Field(
        True, description="Reuse the original model's generations and scores from an earlier evaluation."
    )
    redact: bool = Field(False, description="Replace forget-side text in the report with placeholders.")
    max_examples: int = Field(50, ge=0, description="Rows per table in the report.")
    verdict: VerdictConfig = Field(
        default_factory=VerdictConfig, description="Thresholds of the report's verdict panel."
    )

    def is_demo(self) -> bool:
        return self.forget is None

    def dataset(self, role: str) -> DatasetConfig | None:
        """The data set for `role`, with the demo's sets filled in for the demo scenario."""
        explicit = getattr(self, role)
        if explicit is not None or not self.is_demo():
            return explicit
        if role in ("forget", "heldout", "retain"):
            return DatasetConfig(path=str(BUILTIN.parent.parent / "data" / "builtin" / f"demo_{role}.jsonl"))
        if role in ("paraphrased", "unrelated"):
            return DatasetConfig(path=str(BUILTIN / f"demo_{role}.jsonl"))
        return None

    def rouge_stemming(self) -> tuple[bool, str]:
        """(stem?, why): `rouge_stemmer` if set, else by the forget set's source."""
        if self.rouge_stemmer is not None:
            return self.rouge_stemmer, "set in the evaluation config"
        forget = self.dataset("forget")
        meta = Path(forget.path).parent / "scenario.json"
        if not forget.path.startswith("hf:") and meta.is_file():
            try:
                info = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = {}
            entry = info.get("files", {}).get(Path(forget.path).name, {})
            source = entry.get("format") or str(info.get("scenario", "")).removeprefix("converted:")
            if source == "muse":
                return False, "MUSE source (scenario.json): MUSE does not stem"
        return True, "TOFU-style source: stemmed as TOFU and open-unlearning (use_stemmer=True)"

    def grad_norm_examples(self) -> int:
        """The gradient-norm attack's cap per set (`mia_grad_norm`, its default by scenario)."""
        if self.mia_grad_norm is not None:
            return self.mia_grad_norm
        return 8 if self.is_demo() else 32

    def judge_config(self) -> JudgeConfig:
        if self.judge is not None:
            return self.judge
        if self.is_demo():
            return JudgeConfig(kind="keyword", patterns=DEMO_PATTERNS)
        return JudgeConfig(kind="none")


def load_eval_config(path: str | Path | None = None, **overrides) -> EvalConfig:
    """Read a YAML evaluation config (None: the demo), then apply keyword overrides."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = read_yaml_mapping(
            path, "evaluation data config", "a mapping of roles (forget, retain, ...) to data sets"
        )
        # A run's config.yaml nests data under `data:`; accept it so `--data run/config.yaml` works.
        if "data" in data and isinstance(data["data"], dict) and "forget" in data["data"]:
            data = {k: v for k, v in data["data"].items() if k in EvalConfig.model_fields and v is not None}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
