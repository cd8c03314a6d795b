"""Cache of the original model's pass (generations and scores) across evaluations.

Every run that starts from the same original and is evaluated on the same data repeats the
original's half of the work; it is keyed on the original's weight hashes, the evaluation
settings, the data content and the library versions, and stored as JSON (no pickles).
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path

import numpy as np

from lm_unlearn.evaluation.likelihood import SequenceScores
from lm_unlearn.files import atomic_write_text
from lm_unlearn.manifest import records_digest
from lm_unlearn.models import LoadedModel, cache_dir

log = logging.getLogger(__name__)

IGNORED_SETTINGS = ("redact", "max_examples", "cache_original", "verdict")  # do not change the pass


def pass_key(lm: LoadedModel, suite) -> str | None:
    """Content key of the original's pass, or None when its weights have no recorded hashes."""
    if not lm.source_hashes:
        return None
    settings = {k: v for k, v in suite.cfg.model_dump(mode="json").items() if k not in IGNORED_SETTINGS}
    if suite.cfg.lm_eval is None:
        del settings["lm_eval"]  # so the keys of caches written before lm-eval support still match
    else:
        from lm_unlearn.evaluation.harness import content_digest

        settings["lm_eval_content"] = content_digest(suite.cfg.lm_eval)
    versions = {}
    for name in ("lm-unlearn", "torch", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    content = {
        "weights": sorted(lm.source_hashes.items()),
        "settings": settings,
        "precision": suite.precision,
        "data": {role: records_digest(recs) for role, recs in sorted(suite.data.sets.items())},
        "extraction": hashlib.sha256(json.dumps(suite.data.extraction).encode()).hexdigest(),
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _path(key: str) -> Path:
    return cache_dir() / "eval" / f"original-{key[:32]}.json"


def _scores_to_json(s: SequenceScores) -> dict:
    return {
        "token_logprob": [a.tolist() for a in s.token_logprob],
        "token_zscore": [a.tolist() for a in s.token_zscore],
        "kl": s.kl,
        "tokens": s.tokens,
        "token_greedy": [a.astype(int).tolist() for a in s.token_greedy],
    }


def _scores_from_json(d: dict) -> SequenceScores:
    arrays = [[np.asarray(a, dtype=np.float32) for a in d[k]] for k in ("token_logprob", "token_zscore")]
    greedy = [np.asarray(a, dtype=bool) for a in d["token_greedy"]]  # absent: an older cache, redone
    return SequenceScores(arrays[0], arrays[1], d["kl"], d["tokens"], greedy)


# Groups that read the original's generations; a scores-only entry cannot serve them.
TEXT_GROUPS = {"generation", "extraction", "utility"}


def save_pass(key: str, p, scores_only: bool = False) -> None:
    """scores_only: keep no generated text (a redacted evaluation), so the cache never holds
    what the original model says about the forget set."""
    data = {
        "scores_only": scores_only,
        "generations": {} if scores_only else p.generations,
        "extraction": [] if scores_only else p.extraction,
        "scores": {k: _scores_to_json(v) for k, v in p.scores.items()},
        "gen_scores": {k: _scores_to_json(v) for k, v in p.gen_scores.items()},
        "grad_norms": {k: [a.tolist() for a in v] for k, v in p.grad_norms.items()},
        "lm_eval": p.lm_eval,
        "tokens": p.tokens,
    }
    try:
        atomic_write_text(_path(key), json.dumps(data))
    except OSError as exc:  # a cache that cannot be written only costs time
        log.warning("could not cache the original's evaluation (%s)", exc)


def load_pass(key: str, groups: set[str] | frozenset[str] = frozenset()) -> dict | None:
    """The cached pass's fields (`passes.Pass(**fields)`), or None; a scores-only entry is a
    miss when `groups` need text."""
    path = _path(key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("scores_only") and groups & TEXT_GROUPS:
            return None
        return dict(
            generations=data["generations"],
            extraction=data["extraction"],
            scores={k: _scores_from_json(v) for k, v in data["scores"].items()},
            gen_scores={k: _scores_from_json(v) for k, v in data["gen_scores"].items()},
            grad_norms={
                k: [np.asarray(a, dtype=np.float32) for a in v] for k, v in data.get("grad_norms", {}).items()
            },
            lm_eval=data.get("lm_eval", {}),
            tokens=0,  # nothing was processed this time
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable cache %s (%s)", path, exc)
        return None
