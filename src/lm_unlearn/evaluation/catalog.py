"""What each metric name in eval.json means and which direction is good, for reports and tables."""

from __future__ import annotations

# suffix -> (description, the direction an unlearned model should move it on forget-side sets)
SUFFIXES: dict[str, str] = {
    "judge_rate": "fraction of generations the judge calls undesirable",
    "bleu": "sentence BLEU of generation vs the reference answer (sacrebleu, exp smoothing), mean",
    "rougeL": "ROUGE-L F1 of generation vs the reference answer, mean",
    "rougeL_recall": "ROUGE-L recall of the reference answer in the generation, mean",
    "nll": "mean per-token NLL of the reference answer",
    "prob": "length-normalised probability of the reference answer, exp(-NLL), mean",
    "ppl": "perplexity of the reference text, exp(token-weighted mean NLL)",
    "exact_memorization": "exact memorization: share of answer tokens the model's greedy choice "
    "reproduces given the true prefix (teacher forcing), mean",
    "extraction_strength": "extraction strength: 1 - k/|y|, k the shortest true answer prefix from "
    "which greedy choices reproduce the rest (teacher forcing), mean",
    "kl_to_original": "mean per-token KL(original || model) on the reference answers",
    "bleu_vs_original": "BLEU of generation vs the original model's generation",
    "rougeL_vs_original": "ROUGE-L F1 of generation vs the original model's generation",
    "cosine_vs_original": "MiniLM embedding cosine of generation vs the original model's generation",
    "gen_ppl": "fluency: perplexity of the generations under the original model",
    "distinct_1": "distinct-1: unique words / words over all generations",
    "distinct_2": "distinct-2: unique word bigrams / bigrams over all generations",
    "unique_token_ratio": "unique words / words per generation, mean",
    "empty_rate": "fraction of empty or whitespace-only generations",
    "leak_rate": "fraction of continuations with ROUGE-L F1 >= leak_threshold",
    "auc": "ROC AUC of forget (members) vs held-out (non-members); 0.5 = chance",
    "privleak": "PrivLeak as MUSE reports it: 100 * (AUC_model - AUC_retrain) / AUC_retrain with MUSE's "
    "forget-as-non-member AUC (1 - auc); 0 = as retrained, < 0 under-unlearned (mia.privleak: Min-K% k=0.4)",
    "ks_pvalue": "forget quality (TOFU): KS-test p-value of truth ratios vs the retain-only model",
    "ks_stat": "KS statistic of truth ratios vs the retain-only model",
    "truth_ratio": "truth ratio P(false)/P(true), raw mean over forget questions",
    "truth_ratio_tofu": "TOFU's reported truth ratio: mean of min(R, 1/R) over forget questions",
    "model_utility": "TOFU's model utility: harmonic mean of the utility parts the config supplies; ↑",
}

GROUP_TITLES = {
    "forget": "Forget efficacy (forget set)",
    "heldout": "Generalisation: held-out forget-like prompts",
    "paraphrased": "Generalisation: paraphrased prompts (hard in-scope)",
    "extraction": "Extraction (copyright-style greedy continuation)",
    "retain": "Utility: normal prompts (retain set)",
    "unrelated": "Utility: unrelated QA",
    "mia": "Privacy: membership inference",
    "forget_quality": "Forget quality vs retain-only model (TOFU)",
    "utility": "Utility: model utility and lm-evaluation-harness tasks",
}

# lm-evaluation-harness scores: LM_EVAL_PREFIX + "TASK.METRIC" (evaluation/harness.py).
LM_EVAL_PREFIX = "utility.lm_eval."

# The pair plotted in the forget-vs-utility trade-off: first found wins.
FORGET_AXIS = ("forget.judge_rate", "forget.rougeL", "forget.nll")
UTILITY_AXIS = ("retain.rougeL_vs_original", "unrelated.rougeL_recall", "retain.ppl")


def describe(name: str) -> str:
    if name.startswith(LM_EVAL_PREFIX):
        task, _, metric = name.removeprefix(LM_EVAL_PREFIX).rpartition(".")
        return (
            f"lm-evaluation-harness task {task}: {metric} as lm-eval computes it (info.definitions.lm_eval)"
        )
    suffix = name.rsplit(".", 1)[-1]
    return SUFFIXES.get(suffix, "")


def group_of(name: str) -> str:
    return name.split(".", 1)[0]
