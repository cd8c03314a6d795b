"""Text metrics of a pass's generations: overlap with the references and with the original's
answers, diversity, the judge's rate, fluency, and extraction (definitions: `catalog.SUFFIXES`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lm_unlearn.evaluation import text_metrics as tm
from lm_unlearn.evaluation.passes import Pass, Suite


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None


def text_metrics(suite: Suite, p: Pass, judge, original: Pass | None) -> tuple[dict, dict]:
    metrics: dict[str, Any] = {}
    examples: dict[str, list[dict]] = {}
    for role, gens in p.generations.items():
        records = suite.qa(role)
        refs = [r.response for r in records]
        rouge = [tm.rouge_l(g, ref, suite.stem) if ref else (None,) * 3 for g, ref in zip(gens, refs)]
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
            sims = [tm.rouge_l(g, o, suite.stem)[2] for g, o in zip(gens, base)]
            m["rougeL_vs_original"] = _mean(sims)
            m["bleu_vs_original"] = _mean(tm.sentence_bleu(g, o) for g, o in zip(gens, base))
            if role in ("retain", "unrelated") and "utility" in suite.groups:
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
        truths = [c for _, c in suite.data.extraction]
        rouge = [tm.rouge_l(g, t, suite.stem)[2] for g, t in zip(p.extraction, truths)]
        bleu = [tm.sentence_bleu(g, t) for g, t in zip(p.extraction, truths)]
        metrics["extraction.rougeL"] = _mean(rouge)
        metrics["extraction.bleu"] = _mean(bleu)
        metrics["extraction.leak_rate"] = _mean(float(r >= suite.cfg.leak_threshold) for r in rouge)
        examples["extraction"] = [
            {"prompt": prefix, "reference": truth, "generation": g, "bleu": b, "rougeL": r}
            for (prefix, truth), g, b, r in zip(suite.data.extraction, p.extraction, bleu, rouge)
        ]
    return metrics, examples
