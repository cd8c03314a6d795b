"""Evaluation passes: each model generates and is scored once per data set (`Pass`); every
metric is then read from the passes (`evaluation/metrics/`), never by running a model again.

`run_passes` runs the evaluated model and the original (the original's pass may come from the
cache, `evaluation/cache.py`); `retain_model_pass` scores the retain model's forget and held-out
sets.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from lm_unlearn.data import PromptFormat, Record, read_records
from lm_unlearn.evaluation import cache
from lm_unlearn.evaluation import forget_quality as fq
from lm_unlearn.evaluation.config import EvalConfig
from lm_unlearn.evaluation.generation import generate
from lm_unlearn.evaluation.grad_norms import gradient_norms
from lm_unlearn.evaluation.likelihood import SequenceScores, score_records
from lm_unlearn.manifest import records_digest
from lm_unlearn.models import LoadedModel, load_model

log = logging.getLogger(__name__)

GEN_SETS = ("forget", "heldout", "paraphrased", "retain", "unrelated")
LIK_SETS = ("forget", "heldout", "retain")
FLUENCY_SETS = ("forget", "retain")


@dataclass
class EvalData:
    sets: dict[str, list[Record]]  # role -> records (roles without data are absent)
    extraction: list[tuple[str, str]] = field(default_factory=list)  # (prefix, true continuation)
    truth: list[fq.TruthItem] = field(default_factory=list)  # truth-ratio questions
    truth_source: str = "none"


def split_half(text: str) -> tuple[str, str]:
    words = text.split(" ")
    cut = max(1, len(words) // 2)
    return " ".join(words[:cut]), " " + " ".join(words[cut:])


def load_eval_data(cfg: EvalConfig, leave_out: dict[str, list[str]] | None = None) -> EvalData:
    """The evaluation sets; `leave_out` maps a role to record digests (a run's validation splits)."""
    sets = {}
    for role in GEN_SETS:
        ds = cfg.dataset(role)
        if ds is not None:
            # A question alone (no answer) is scored against the original model's generation.
            sets[role] = read_records(ds, role, need_response=False)
            if leave_out and leave_out.get(role):
                held = set(leave_out[role])
                sets[role] = [r for r in sets[role] if records_digest([r]) not in held]
    if "forget" not in sets:
        raise ValueError("evaluation needs a forget set")
    ex_cfg = cfg.dataset("extraction")
    source = read_records(ex_cfg, "extraction") if ex_cfg is not None else sets["forget"]
    pairs = []
    for r in source:
        if ex_cfg is not None and not r.is_text:
            pairs.append((r.prompt, r.response))
        elif len(r.response.split(" ")) >= 2:
            pairs.append(split_half(r.response))
    data = EvalData(sets=sets, extraction=pairs)
    forget_qa = [r for r in sets["forget"] if not r.is_text and r.response]
    if cfg.perturbed is not None:
        data.truth, data.truth_source = fq.read_truth_items(cfg.perturbed), "perturbed set"
    elif len(forget_qa) >= 2:
        data.truth = fq.items_from_answers([r.prompt for r in forget_qa], [r.response for r in forget_qa])
        data.truth_source = "other forget answers"
    return data


def as_loaded(model: str | LoadedModel | None) -> LoadedModel | None:
    if model is None or isinstance(model, LoadedModel):
        return model
    return load_model(model)


@dataclass
class Pass:
    """Everything one model produced: generations and likelihood scores per set."""

    generations: dict[str, list[str]] = field(default_factory=dict)
    extraction: list[str] = field(default_factory=list)
    scores: dict[str, SequenceScores] = field(default_factory=dict)
    gen_scores: dict[str, SequenceScores] = field(default_factory=dict)  # generations under original
    grad_norms: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per-tensor, mia.grad_norm
    lm_eval: dict[str, float] = field(default_factory=dict)  # "TASK.METRIC" -> lm-eval's score
    tokens: int = 0


class Suite:
    def __init__(self, data: EvalData, cfg: EvalConfig, precision: str):
        self.data, self.cfg, self.precision = data, cfg, precision
        self.groups = set(cfg.metrics)
        self.stem, self.stem_why = cfg.rouge_stemming()

    def qa(self, role: str) -> list[Record]:
        """The set's prompt/response records; raw-text records are only scored, not prompted."""
        return [r for r in self.data.sets.get(role, []) if not r.is_text]

    def fmt(self, lm: LoadedModel) -> PromptFormat:
        fmt = PromptFormat.choose(lm.tokenizer, self.cfg.template, self.cfg.system_prompt)
        return fmt.with_prefix(lm.prompt_prefix) if lm.prompt_prefix else fmt

    def generations(self, lm: LoadedModel, p: Pass, name: str = "model") -> None:
        fmt, cfg = self.fmt(lm), self.cfg
        wanted = [s for s in GEN_SETS if self.qa(s)]
        if "generation" not in self.groups:
            wanted = [s for s in wanted if s in ("retain", "unrelated")] if "utility" in self.groups else []
        # All sets in one call: batches sorted by length across sets pad least and run fewest steps.
        owners = [(role, r) for role in wanted for r in self.qa(role)]
        out = generate(
            lm.model,
            lm.tokenizer,
            [fmt.prompt_text(r.prompt) for _, r in owners],
            add_special_tokens=fmt.kind != "chat",
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            stop=cfg.stop,
            precision=self.precision,
            desc=f"{name}: generation",
        )
        p.tokens += out.tokens
        for (role, _), text in zip(owners, out.texts):
            p.generations.setdefault(role, []).append(text)
        if "extraction" in self.groups and self.data.extraction:
            # Raw continuation, no prompt template: extraction asks what the weights reproduce.
            # As long as the longest true continuation (as in MUSE's verbatim test), not longer.
            longest = max(
                len(lm.tokenizer(c, add_special_tokens=False)["input_ids"]) for _, c in self.data.extraction
            )
            out = generate(
                lm.model,
                lm.tokenizer,
                [prefix for prefix, _ in self.data.extraction],
                add_special_tokens=True,
                max_new_tokens=min(cfg.max_new_tokens, longest),
                batch_size=cfg.batch_size,
                stop=cfg.stop,
                precision=self.precision,
                desc=f"{name}: extraction",
            )
            p.extraction, p.tokens = out.texts, p.tokens + out.tokens

    def likelihoods(
        self, lm: LoadedModel, p: Pass, reference: LoadedModel | None, roles=LIK_SETS, name: str = "model"
    ) -> None:
        fmt = self.fmt(lm)
        for role in roles:
            if role not in self.data.sets or not all(r.response for r in self.data.sets[role]):
                continue  # questions without answers have no reference to score
            # The KL pairs both models on the same tokens; a prompt-wrapped model (icu) sees other
            # tokens than the original, so it gets no KL rather than a meaningless 0.
            paired = reference is not None and role == "retain" and not lm.prompt_prefix
            ref = reference.model if paired else None
            p.scores[role] = score_records(
                lm.model,
                fmt,
                self.data.sets[role],
                max_length=self.cfg.max_length,
                batch_size=max(1, self.cfg.batch_size // 2),
                precision=self.precision,
                reference=ref,
                desc=f"{name}: likelihood {role}",
            )
            p.tokens += p.scores[role].tokens * (2 if ref is not None else 1)

    def grad_norms(self, lm: LoadedModel, p: Pass, name: str = "model") -> None:
        """The gradient-norm attack's per-tensor norms on the first `mia_grad_norm` forget and
        held-out examples (a backward pass over them, hence the cap)."""
        cap = self.cfg.grad_norm_examples()
        if (
            cap == 0
            or "mia" not in self.groups
            or not all(r in self.data.sets for r in ("forget", "heldout"))
        ):
            return
        for role in ("forget", "heldout"):
            p.grad_norms[role] = gradient_norms(
                lm.model,
                self.fmt(lm),
                self.data.sets[role][:cap],
                max_length=self.cfg.max_length,
                precision=self.precision,
                desc=f"{name}: gradient norms {role}",
            )

    def fluency(self, p: Pass, original: LoadedModel, name: str = "model") -> None:
        """Score the forget and retain sets' non-empty generations under the original model.

        Those two show degenerate output where it matters (refusal-like whitespace on forget
        prompts, damage on normal prompts); the other sets are skipped to halve the cost.
        """
        fmt = self.fmt(original)
        for role, texts in p.generations.items():
            if role not in FLUENCY_SETS:
                continue
            records = [
                Record(r.prompt, g, f"{role} generation {i}")
                for i, (r, g) in enumerate(zip(self.qa(role), texts))
                if g.strip()
            ]
            if records:
                p.gen_scores[role] = score_records(
                    original.model,
                    fmt,
                    records,
                    max_length=self.cfg.max_length,
                    batch_size=max(1, self.cfg.batch_size // 2),
                    precision=self.precision,
                    zscores=False,
                    desc=f"{name}: fluency {role}",
                )
                p.tokens += p.gen_scores[role].tokens

    def run_pass(self, name: str, lm: LoadedModel, original: LoadedModel | None, phases: dict) -> Pass:
        """Generate, score and (with an original) score the generations' fluency, for one model."""
        p, groups = Pass(), self.groups
        log.info("evaluating %s (%s)", name, lm.spec)
        with timer(phases, f"{name}.generation"):
            self.generations(lm, p, name)
        if groups & {"likelihood", "mia", "utility"}:
            ref = original if (name == "model" and "utility" in groups) else None
            roles = {"forget", "heldout"} if groups & {"likelihood", "mia"} else set()
            roles |= {"retain"} if groups & {"likelihood", "utility"} else set()
            with timer(phases, f"{name}.likelihood"):
                self.likelihoods(lm, p, ref, roles=[r for r in LIK_SETS if r in roles], name=name)
            with timer(phases, f"{name}.grad_norm"):
                self.grad_norms(lm, p, name)
        if original is not None and "utility" in groups:
            with timer(phases, f"{name}.fluency"):
                self.fluency(p, original, name)
        if self.cfg.lm_eval is not None and "utility" in groups:
            from lm_unlearn.evaluation.harness import run_tasks  # lm-eval, an optional extra

            with timer(phases, f"{name}.lm_eval"):
                p.lm_eval = run_tasks(lm, self.cfg.lm_eval)
        return p


@contextmanager
def timer(phases: dict[str, float], name: str):
    start = time.perf_counter()
    yield
    phases[name] = round(time.perf_counter() - start, 2)
    log.info("%s: %.1f s", name, phases[name])


def run_passes(
    suite: Suite, lm: LoadedModel, orig: LoadedModel | None, phases: dict[str, float]
) -> tuple[dict[str, Pass], bool]:
    """The model's pass and the original's ({name: Pass}), and whether the original's came from
    the cache (`cfg.cache_original`); the original's is saved there after it runs."""
    passes: dict[str, Pass] = {}
    cached_original = False
    for name, loaded in (("model", lm), ("original", orig)):
        if loaded is None:
            continue
        key = None
        if name == "original" and suite.cfg.cache_original:
            key = cache.pass_key(loaded, suite)
            if key is not None and (hit := cache.load_pass(key, suite.groups)) is not None:
                log.info("original's generations and scores read from the cache")
                passes[name], cached_original = Pass(**hit), True
                continue
        passes[name] = suite.run_pass(name, loaded, orig, phases)
        if key is not None:
            cache.save_pass(key, passes[name], scores_only=suite.cfg.redact)
    return passes, cached_original


def retain_model_pass(suite: Suite, retain: LoadedModel | None) -> Pass | None:
    """The retain model's forget and held-out scores (PrivLeak, forget quality), when needed."""
    if retain is None or not suite.groups & {"mia", "forget_quality"}:
        return None
    p = Pass()
    suite.likelihoods(retain, p, None, roles=("forget", "heldout"), name="retain model")
    suite.grad_norms(retain, p, "retain model")
    return p
