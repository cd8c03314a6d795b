"""UNDO's distillation data: the retain records plus text sampled from the teacher.

Lee et al. (2025) distil on a general corpus, so the noised student relearns the general
knowledge the noise took away. A run has only its forget and retain data; distilling on those
alone left the student's answers to unrelated questions damaged (13 % of them kept on the
knowledge benchmark, against 58-73 % for the other methods). The teacher's samples from its
start token are text of the kind it was trained on, and the teacher (already unlearned) does
not write the forget set. Measured (docs/benchmark.md, 2026-12-02): they helped little there,
15 % kept, because that target was fine-tuned on biographies and samples biographies; a teacher
closer to a general model samples more general text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lm_unlearn.config import RunConfig, UndoConfig
from lm_unlearn.data.records import Record, read_records
from lm_unlearn.files import atomic_write_json, atomic_write_text, sha256_file
from lm_unlearn.models import load_model

DATA, RECORD = "distill-retain.jsonl", "distill-data.json"
BATCH = 16  # texts sampled per generate call


@torch.no_grad()
def sample_texts(model: torch.nn.Module, tokenizer, n: int, max_new_tokens: int, seed: int) -> list[str]:
    """n texts sampled (temperature 1, top-p 0.95) from the start token, reproducible from
    `seed`; empty samples are dropped. The caller's random state is left untouched."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    texts: list[str] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for first in range(0, n, BATCH):
            ids = torch.full((min(BATCH, n - first), 1), start, device=device)
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=1.0,
                top_p=0.95,
                top_k=None,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
            )
            texts += [tokenizer.decode(row[1:], skip_special_tokens=True).strip() for row in out]
    return [t for t in texts if t]


def record_row(record: Record) -> dict[str, str]:
    return (
        {"text": record.response}
        if record.is_text
        else {"prompt": record.prompt, "response": record.response}
    )


def distill_data(cfg: RunConfig, undo: UndoConfig, teacher: Path, phases: Path) -> dict[str, Any] | None:
    """Write phases/distill-retain.jsonl (the retain records, then `undo.distill_texts` texts the
    teacher samples) unless it is there with the same settings; returns its record
    (phases/distill-data.json), or None when there is nothing to write (no retain data, no
    texts): the distil phase then uses the run's own data."""
    seed = cfg.train.seed if undo.seed is None else undo.seed
    settings = {"sampled_texts": undo.distill_texts, "max_new_tokens": undo.distill_text_tokens, "seed": seed}
    path, record_path = phases / DATA, phases / RECORD
    if record_path.is_file() and path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("settings") == settings and record.get("sha256") == sha256_file(path):
            return record
    retain = read_records(cfg.data.retain, "retain") if cfg.data.retain else []
    texts: list[str] = []
    if undo.distill_texts:
        loaded = load_model(str(teacher), dtype=torch.float32)
        texts = sample_texts(
            loaded.model.eval(), loaded.tokenizer, undo.distill_texts, undo.distill_text_tokens, seed
        )
    if not retain and not texts:
        return None
    rows = [record_row(r) for r in retain] + [{"text": t} for t in texts]
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    record = {
        "phase": "distill data",
        "path": str(Path(phases.name) / DATA),
        "retain_records": len(retain),
        "sampled_texts": len(texts),
        "settings": settings,
        "sha256": sha256_file(path),
    }
    atomic_write_json(record_path, record)
    return record
