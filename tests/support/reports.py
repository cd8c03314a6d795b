"""Hand-made eval.json, metrics.jsonl and manifest.json for the report tests (no models run)."""

from __future__ import annotations

import json
from pathlib import Path

MARKER = "QZX-forget-marker-7731"  # planted in every forget-side text; must vanish under redaction
HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=x>', "a $b$ c $")


def example(i: int, role: str, forget_side: bool) -> dict:
    tag = f" {MARKER}" if forget_side else ""
    return {
        "prompt": f"{role} question {i}{tag} {HOSTILE[i % 3]}",
        "reference": f"{role} answer {i}{tag}",
        "generation": f"I do not know about {role} {i}{tag} {HOSTILE[(i + 1) % 3]}",
        "original_generation": f"The answer is {role} {i}{tag} {HOSTILE[(i + 2) % 3]}",
        "rougeL": 0.1 * i,
        "judge": float(i == 0),
    }


def eval_result(**model_changes) -> dict:
    model = {
        "forget.judge_rate": 0.04,
        "forget.rougeL": 0.12,
        "forget.nll": 7.5,
        "heldout.judge_rate": 0.05,
        "paraphrased.judge_rate": 0.0,
        "retain.rougeL_vs_original": 0.24,
        "retain.bleu_vs_original": 0.066,
        "retain.cosine_vs_original": 0.39,
        "retain.ppl": 40.0,
        "unrelated.bleu_vs_original": 0.55,
        "mia.min_k.auc": 0.27,
        "extraction.leak_rate": 0.0,
    } | model_changes
    original = {
        "forget.judge_rate": 1.0,
        "forget.rougeL": 0.8,
        "forget.nll": 1.2,
        "heldout.judge_rate": 0.9,
        "paraphrased.judge_rate": 0.92,
        "retain.ppl": 12.0,
        "mia.min_k.auc": 0.9,
        "extraction.leak_rate": 0.6,
    }
    retain_model = {"forget.judge_rate": 0.02, "retain.rougeL_vs_original": 0.8, "mia.min_k.auc": 0.5}
    roles = {"forget": True, "heldout": True, "paraphrased": True, "extraction": True, "retain": False}
    roles["unrelated"] = False
    return {
        "version": 1,
        "metrics": {"model": model, "original": original, "retain_model": retain_model},
        "examples": {role: [example(i, role, side) for i in range(4)] for role, side in roles.items()},
        "info": {
            "models": {"model": "runs/x <b>", "original": "builtin:tiny"},
            "judge": "keyword",
            "sets": {"forget": 4, "retain": 4},
            "groups": ["generation"],
            "config": {"max_examples": 50},
            "definitions": {"judge_rate": "share judged <undesirable>"},
            "eval_cost": {"wall_s": 1.5},
        },
    }


def write_run(run_dir: Path, result: dict | None = None, steps: int = 12, kept: int = 8) -> Path:
    """A finished run directory: eval.json, metrics.jsonl (validated every 4 steps), manifest.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for step in range(1, steps + 1):
        row = {"step": step, "loss": 3.0 - 0.2 * step, "npo": 2.0 - 0.1 * step, "kl": 0.01 * step}
        row |= {
            "forget_nll": 1.0 + 0.5 * step,
            "lr": 1e-5,
            "grad_norm": 1.0,
            "tokens": 100,
            "elapsed_s": step,
        }
        if step % 4 == 0:
            row |= {
                "val_forget_nll": 1.0 + 0.6 * step,
                "val_judge_rate": max(0.0, 1 - 0.1 * step),
                "val_retain_kl": 0.02 * step,
                "val_retain_similarity": 1 - 0.05 * step,
                "val_retain_nll": 2.0 + 0.01 * step,
            }
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 13, "lo')
    manifest = {
        "status": "finished",
        "steps": steps,
        "stop_reason": "max_steps <b>",
        "selection": {
            "rule": "first_met",
            "step": kept,
            "reason": "first step that met the forget target",
            "signals": {"val_judge_rate": 0.2},
            "baseline": {"val_judge_rate": 1.0, "val_forget_nll": 1.0, "val_retain_similarity": 1.0},
            "target": {"judge_rate_max": 0.2},
        },
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "eval.json").write_text(json.dumps(result or eval_result()))
    return run_dir
