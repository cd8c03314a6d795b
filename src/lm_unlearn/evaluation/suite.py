"""The evaluation suite: generate and score once per model and data set, then read every metric.

`evaluate(model, data, cfg, original=..., retain_model=...)` returns a JSON-ready dict:
  metrics:  {"model": {name: value}, "original": {...}, "retain_model": {...}}  flat names
            such as "forget.rougeL", "mia.min_k.auc", "forget_quality.ks_pvalue"
  examples: {set: [per-example rows]} for the evaluated model (and the original's generations)
  info:     models, judge, definitions, timing
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lm_unlearn.data import PromptFormat, Record, read_records
from lm_unlearn.evaluation import forget_quality as fq
from lm_unlearn.evaluation import mia
from lm_unlearn.evaluation import text_metrics as tm
from lm_unlearn.evaluation.catalog import SUFFIXES
from lm_unlearn.evaluation.config import EvalConfig
from lm_unlearn.evaluation.cost import peak_rss_bytes, reset_peak_rss
from lm_unlearn.evaluation.generation import generate
from lm_unlearn.evaluation.judges import build_judge
from lm_unlearn.evaluation.likelihood import SequenceScores, gradient_norms, score_records
from lm_unlearn.evaluation.memorization import memorization_metrics
from lm_unlearn.manifest import records_digest
from lm_unlearn.models import LoadedModel, load_model
from lm_unlearn.precision import resolve_precision

log = logging.getLogger(__name__)

GEN_SETS = ("forget", "heldout", "paraphrased", "retain", "unrelated")
LIK_SETS = ("forget", "heldout", "retain")
FLUENCY_SETS = ("forget", "retain")
ATTACKS = ("loss", "zlib", "min_k", "min_k40", "min_k_pp", "grad_norm", "ref")


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


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None


@dataclass
class Pass:
    """Everything one model produced: generations and likelihood scores per set."""

    generations: dict[str, list[str]] = field(default_factory=dict)
    extraction: list[str] = field(default_factory=list)
    scores: dict[str, SequenceScores] = field(default_factory=dict)
    gen_scores: dict[str, SequenceScores] = field(default_factory=dict)  # generations under original
    grad_norms: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per-tensor, mia.grad_norm
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
        held-out examples (a backward pass each, hence the cap)."""
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
        return p

    def text_metrics(self, p: Pass, judge, original: Pass | None) -> tuple[dict, dict]:
        metrics: dict[str, Any] = {}
        examples: dict[str, list[dict]] = {}
        for role, gens in p.generations.items():
            records = self.qa(role)
            refs = [r.response for r in records]
            rouge = [tm.rouge_l(g, ref, self.stem) if ref else (None,) * 3 for g, ref in zip(gens, refs)]
            bleu = [tm.sentence_bleu(g, ref) if ref else None for g, ref in zip(gens, refs)]
            rows = [
                {"prompt": r.prompt, "reference": r.response, "generation": g, "bleu": b, "rougeL": rl[2]}
                for r, g, b, rl in zip(records, gens, bleu, rouge)
            ]
            m = {
                "bleu": _mean(bleu),
                "rougeL": _mean(x[2] for x in rouge),
                "rougeL_recall": _mean(x[1] for x in rouge),
                "distinct_1": tm.distinct_n(gens, 1),
                "distinct_2": tm.distinct_n(gens, 2),
                "unique_token_ratio": _mean(tm.unique_token_ratio(g) for g in gens),
                "empty_rate": _mean(float(tm.is_empty(g)) for g in gens),
            }
            if judge is not None:
                scores = judge.scores(gens)
                m["judge_rate"] = _mean(float(s >= judge.threshold) for s in scores)
                for row, s in zip(rows, scores):
                    row["judge"] = s
            if role in p.gen_scores:
                lp = np.concatenate(p.gen_scores[role].token_logprob)
                m["gen_ppl"] = float(np.exp(-lp.mean()))
            if original is not None and role in original.generations and original is not p:
                base = original.generations[role]
                sims = [tm.rouge_l(g, o, self.stem)[2] for g, o in zip(gens, base)]
                m["rougeL_vs_original"] = _mean(sims)
                m["bleu_vs_original"] = _mean(tm.sentence_bleu(g, o) for g, o in zip(gens, base))
                if role in ("retain", "unrelated") and "utility" in self.groups:
                    from lm_unlearn.evaluation.embeddings import cosine_pairs

                    cos = cosine_pairs(gens, base)
                    m["cosine_vs_original"] = _mean(cos)
                    for row, c in zip(rows, cos):
                        row["cosine_vs_original"] = c
                for row, o, s in zip(rows, base, sims):
                    row["original_generation"], row["rougeL_vs_original"] = o, s
            metrics.update({f"{role}.{k}": v for k, v in m.items()})
            examples[role] = rows
        if p.extraction:
            truths = [c for _, c in self.data.extraction]
            rouge = [tm.rouge_l(g, t, self.stem)[2] for g, t in zip(p.extraction, truths)]
            bleu = [tm.sentence_bleu(g, t) for g, t in zip(p.extraction, truths)]
            metrics["extraction.rougeL"] = _mean(rouge)
            metrics["extraction.bleu"] = _mean(bleu)
            metrics["extraction.leak_rate"] = _mean(float(r >= self.cfg.leak_threshold) for r in rouge)
            examples["extraction"] = [
                {"prompt": prefix, "reference": truth, "generation": g, "bleu": b, "rougeL": r}
                for (prefix, truth), g, b, r in zip(self.data.extraction, p.extraction, bleu, rouge)
            ]
        return metrics, examples

    def likelihood_metrics(self, p: Pass, examples: dict) -> dict:
        metrics: dict[str, Any] = {}
        for role, s in p.scores.items():
            nll = s.mean_nll
            metrics[f"{role}.nll"] = float(nll.mean())
            metrics[f"{role}.prob"] = float(np.exp(-nll).mean())
            all_lp = np.concatenate(s.token_logprob)
            metrics[f"{role}.ppl"] = float(np.exp(-all_lp.mean()))
            if s.kl is not None:
                metrics[f"{role}.kl_to_original"] = float(np.mean(s.kl))
            if role in ("forget", "heldout") and s.token_greedy:
                metrics.update({f"{role}.{k}": v for k, v in memorization_metrics(s.token_greedy).items()})
            records = self.data.sets[role]
            rows = examples.setdefault(role, [{"prompt": r.prompt, "reference": r.response} for r in records])
            if len(rows) == len(nll):  # rows of generations cover only prompt records
                for row, value in zip(rows, nll):
                    row["nll"] = float(value)
        return metrics

    def mia_scores(self, p: Pass, reference: Pass | None) -> dict[str, dict[str, list[float]]]:
        """attack -> {"forget": scores, "heldout": scores}."""
        k = self.cfg.min_k
        out: dict[str, dict[str, list[float]]] = {}
        for role in ("forget", "heldout"):
            s, texts = p.scores[role], [r.response for r in self.data.sets[role]]
            per = {
                "loss": [mia.loss_score(lp) for lp in s.token_logprob],
                "zlib": [mia.zlib_score(lp, t) for lp, t in zip(s.token_logprob, texts)],
                "min_k": [mia.min_k_score(lp, k) for lp in s.token_logprob],
                "min_k40": [mia.min_k_score(lp, mia.MUSE_MIN_K) for lp in s.token_logprob],
                "min_k_pp": [mia.min_k_pp_score(z, k) for z in s.token_zscore],
            }
            if role in p.grad_norms:
                per["grad_norm"] = [mia.grad_norm_score(n) for n in p.grad_norms[role]]
            if reference is not None and role in reference.scores:
                ref_lp = reference.scores[role].token_logprob
                per["ref"] = [mia.reference_score(a, b) for a, b in zip(s.token_logprob, ref_lp)]
            for attack, values in per.items():
                out.setdefault(attack, {})[role] = values
        return out


@contextmanager
def timer(phases: dict[str, float], name: str):
    start = time.perf_counter()
    yield
    phases[name] = round(time.perf_counter() - start, 2)
    log.info("%s: %.1f s", name, phases[name])


def _can_mia(p: Pass) -> bool:
    return "forget" in p.scores and "heldout" in p.scores


NO_REFERENCE = (
    "none: skipped, the reference attack needs a model that never saw the forget set "
    "(--retain-model or --reference-model)"
)


def _mia_reference(
    suite: Suite, retain_pass: Pass | None, reference: LoadedModel | None
) -> tuple[Pass | None, str]:
    """The reference attack's reference: the retain (retrained) model, else a user's reference
    model, else none. Never the original, which saw the forget set (Carlini et al., 2021; MUSE)."""
    if retain_pass is not None and _can_mia(retain_pass):
        return retain_pass, "retain_model"
    if reference is None:
        return None, NO_REFERENCE
    ref_pass = Pass()
    suite.likelihoods(reference, ref_pass, None, roles=("forget", "heldout"))
    return ref_pass, f"reference_model ({reference.spec})"


def _mia_metrics(
    suite: Suite,
    passes: dict[str, Pass],
    retain_pass: Pass | None,
    reference: Pass | None,
    metrics: dict,
    examples: dict,
) -> dict[str, Any]:
    """Attack AUCs per model, MUSE's PrivLeak against the retain model; returns the definitions."""
    retain_auc: dict[str, float] = {}
    scored = dict(passes) | (
        {"retain_model": retain_pass} if retain_pass is not None and _can_mia(retain_pass) else {}
    )
    for name, p in scored.items():
        ref = reference if p is not reference else None  # a model is no reference for itself
        for attack, by_role in suite.mia_scores(p, ref).items():
            value = mia.auc(by_role["forget"], by_role["heldout"])
            metrics[name][f"mia.{attack}.auc"] = value
            if name == "retain_model":
                retain_auc[attack] = value
            if name == "model":
                for role in ("forget", "heldout"):
                    rows = examples.get(role, [])
                    if len(rows) == len(by_role[role]):
                        for row, v in zip(rows, by_role[role]):
                            row[f"mia_{attack}"] = v
    for name in passes:
        for attack, value in retain_auc.items():
            if f"mia.{attack}.auc" in metrics[name]:
                metrics[name][f"mia.{attack}.privleak"] = mia.muse_privleak(
                    metrics[name][f"mia.{attack}.auc"], value
                )
        if "mia.min_k40.privleak" in metrics[name]:
            metrics[name]["mia.privleak"] = metrics[name]["mia.min_k40.privleak"]
    return {
        "members": "forget",
        "nonmembers": "heldout",
        "privleak": "MUSE's PrivLeak, 100 * (a_retain - a) / (1 - a_retain) for the AUCs a above (MUSE's "
        f"own AUC is 1 - a); mia.privleak is min_k40's: Min-K% at k={mia.MUSE_MIN_K}, as in MUSE",
        "grad_norm": f"gradient-norm attack on the first {suite.cfg.grad_norm_examples()} forget and "
        "held-out examples only (a backward pass each): score = -mean over parameter tensors of ||grad L||_2",
    }


def evaluate(
    model: str | LoadedModel,
    data: EvalData,
    cfg: EvalConfig | None = None,
    *,
    original: str | LoadedModel | None = None,
    retain_model: str | LoadedModel | None = None,
    reference_model: str | LoadedModel | None = None,
) -> dict[str, Any]:
    """Evaluate `model` (and, as the "before", `original`) on `data`; see the module docstring.

    `retain_model` never saw the forget set (TOFU's retain-only, MUSE's retrained model): it
    anchors PrivLeak and forget quality, and is the reference-model attack's reference.
    `reference_model`, used only without a `retain_model`, is another model that never saw it.
    """
    cfg = cfg or EvalConfig()
    started = time.perf_counter()
    reset_peak_rss()
    precision = resolve_precision(cfg.precision, "evaluation")
    suite = Suite(data, cfg, precision)
    groups = suite.groups
    lm, orig, retain = as_loaded(model), as_loaded(original), as_loaded(retain_model)
    judge = None
    if "generation" in groups:
        judge = build_judge(
            cfg.judge_config(),
            [r.response for r in data.sets["forget"] if r.response],
            [r.response for r in data.sets.get("retain", [])],
        )
    needs_lik = groups & {"likelihood", "mia", "utility", "forget_quality"}
    passes: dict[str, Pass] = {}
    phases: dict[str, float] = {}
    cached_original = False
    for name, loaded in (("model", lm), ("original", orig)):
        if loaded is None:
            continue
        key = None
        if name == "original" and cfg.cache_original:
            from lm_unlearn.evaluation import cache

            key = cache.pass_key(loaded, suite)
            if key is not None and (hit := cache.load_pass(key, groups)) is not None:
                log.info("original's generations and scores read from the cache")
                passes[name], cached_original = hit, True
                continue
        passes[name] = suite.run_pass(name, loaded, orig, phases)
        if key is not None:
            cache.save_pass(key, passes[name], scores_only=cfg.redact)
    retain_pass = None
    if retain is not None and groups & {"mia", "forget_quality"}:
        retain_pass = Pass()
        suite.likelihoods(retain, retain_pass, None, roles=("forget", "heldout"), name="retain model")
        suite.grad_norms(retain, retain_pass, "retain model")

    metrics: dict[str, dict[str, Any]] = {}
    examples: dict[str, list[dict]] = {}
    for name, p in passes.items():
        m, ex = suite.text_metrics(p, judge, passes.get("original"))
        if needs_lik:
            m.update(suite.likelihood_metrics(p, ex))
        metrics[name] = m
        if name == "model":
            examples = ex
    if retain_pass is not None:
        metrics["retain_model"] = suite.likelihood_metrics(retain_pass, {})

    mia_defs: dict[str, Any] = {}
    if "mia" in groups and _can_mia(passes["model"]):
        reference, ref_name = _mia_reference(suite, retain_pass, as_loaded(reference_model))
        mia_defs = _mia_metrics(suite, passes, retain_pass, reference, metrics, examples)
        mia_defs["reference_model"] = ref_name

    if "forget_quality" in groups and retain is not None and data.truth:
        ratios = {}
        for name, loaded in (("model", lm), ("retain_model", retain), ("original", orig)):
            if loaded is not None:
                ratios[name] = _truth_ratios(suite, loaded, data.truth)
        for name, r in ratios.items():
            metrics.setdefault(name, {})["forget_quality.truth_ratio"] = float(np.mean(r))
            metrics[name]["forget_quality.truth_ratio_tofu"] = fq.tofu_truth_ratio_summary(r)
            if name != "retain_model":
                pvalue, stat = fq.forget_quality(r, ratios["retain_model"])
                metrics[name]["forget_quality.ks_pvalue"] = pvalue
                metrics[name]["forget_quality.ks_stat"] = stat
        forget_rows = examples.get("forget", [])
        if [row["prompt"] for row in forget_rows] == [item.prompt for item in data.truth]:
            for row, v in zip(forget_rows, ratios["model"]):
                row["truth_ratio"] = float(v)

    for m in metrics.values():
        if (value := fq.model_utility(m)[0]) is not None:
            m["utility.model_utility"] = value
    utility_parts = fq.model_utility(metrics["model"])[1]
    wall = time.perf_counter() - started
    phases["other (metrics, judge, retain model)"] = round(wall - sum(phases.values()), 2)
    tokens = sum(p.tokens for p in passes.values()) + (retain_pass.tokens if retain_pass else 0)
    return {
        "version": 1,
        "metrics": metrics,
        "examples": examples,
        "info": {
            "models": {
                "model": lm.spec,
                "original": orig.spec if orig else None,
                "retain_model": retain.spec if retain else None,
            },
            "judge": getattr(judge, "name", None),
            "sets": {role: len(recs) for role, recs in data.sets.items()}
            | {"extraction": len(data.extraction)},
            "groups": sorted(groups),
            "precision": precision,
            "config": cfg.model_dump(mode="json"),
            "definitions": SUFFIXES
            | {
                "mia": mia_defs,
                "forget_quality": fq.__doc__.strip(),
                "truth_ratio_answers": f"{len(data.truth)} questions; answers from the {data.truth_source}",
                "rouge_stemmer": {"stem": suite.stem, "why": suite.stem_why},
                "model_utility": "TOFU's model utility, the harmonic mean, here of "
                + (", ".join(utility_parts) or "nothing (no retain or unrelated set)")
                + "; TOFU's real-authors/world-facts probabilities and truth ratios need sets not given",
            },
            "eval_cost": {
                "wall_s": round(wall, 2),
                "tokens": int(tokens),
                "peak_rss_bytes": peak_rss_bytes(),
                "phases_s": phases,
                "original_from_cache": cached_original,
            },
        },
    }


def _truth_ratios(suite: Suite, lm: LoadedModel, items: list[fq.TruthItem]) -> np.ndarray:
    """TOFU truth ratio per question (`fq.truth_ratio`), scored in fp32 over answer tokens."""
    fmt = suite.fmt(lm)
    kw = dict(
        max_length=suite.cfg.max_length,
        batch_size=max(1, suite.cfg.batch_size // 2),
        precision=suite.precision,
        zscores=False,
    )
    true = [Record(item.prompt, item.true, item.source) for item in items]
    true_nll = score_records(lm.model, fmt, true, desc="truth ratio: true answers", **kw).mean_nll
    flat = [Record(item.prompt, a, f"{item.source} (false answer)") for item in items for a in item.false]
    false_scores = score_records(lm.model, fmt, flat, desc="truth ratio: false answers", **kw)
    false_nll = false_scores.mean_nll.reshape(len(items), -1)
    return fq.truth_ratio(true_nll, false_nll)
