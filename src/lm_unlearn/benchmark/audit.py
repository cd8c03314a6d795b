"""`unlearn benchmark --audit relearn,quantize`: each method's run attacked at one fixed budget.

The column is the share of the forget gap the attack closes, the figure `unlearn audit`'s
verdicts print (`analysis.attacks.verdict.gap_closed`):

    gap_closed = (NLL_unlearned - NLL_attacked) / (NLL_unlearned - NLL_target)

with mean answer-token NLLs on the forget records the attack measures (relearn: the part it did
not train on; quantize: all of them) and NLL_target the target (original) model's. 0: the attack
brings nothing back; 1: back to the target; nothing is clipped, so below 0 (the attack pushed
further away) and above 1 (past the target) show as they are. When unlearning left a gap under
`verdict.MIN_GAP` nats the ratio would be noise: the value is None and the row carries a note.

Each attack's result is cached in the run's benchmark_audit.json with its budget, so an
interrupted benchmark does not redo a finished attack; a changed budget runs it again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_unlearn.errors import UnlearnError
from lm_unlearn.files import atomic_write_json
from lm_unlearn.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class AuditBudget:
    """The attack settings, the same for every method so that the columns compare."""

    relearn_steps: int = 10  # AdamW steps on `relearn_fraction` of the forget set
    relearn_lr: float = 2e-5
    relearn_batch_size: int = 4
    relearn_fraction: float = 0.5
    # The quantize attack simulates quantisation on CPU (round-to-nearest per weight group),
    # so 4-bit, the setting Zhang et al. (2025) found to restore knowledge, needs no GPU.
    quantize_bits: int = 4
    quantize_group_size: int = 128
    max_new_tokens: int = 32  # the attacks' greedy answers (recall; not used by the column)

    def describe(self, attacks: list[str]) -> str:
        """The named attacks' settings, in words (leaderboard.md's notes)."""
        words = {
            "relearn": f"relearn: {self.relearn_steps} AdamW steps, lr {self.relearn_lr:g}, batch "
            f"{self.relearn_batch_size}, on the first {self.relearn_fraction:.0%} of the forget set, "
            "measured on the rest",
            "quantize": f"quantize: {self.quantize_bits}-bit, simulated on CPU (asymmetric min-max "
            f"round-to-nearest, groups of {self.quantize_group_size})",
        }
        return "; ".join(words[name] for name in attacks)


# The attacks the benchmark runs, each with its options at a budget.
BUDGETED: dict[str, Callable[[AuditBudget], dict[str, Any]]] = {
    "relearn": lambda b: {
        "steps": b.relearn_steps,
        "lr": b.relearn_lr,
        "batch_size": b.relearn_batch_size,
        "fraction": b.relearn_fraction,
        "max_new_tokens": b.max_new_tokens,
    },
    "quantize": lambda b: {
        "bits": [b.quantize_bits],
        "group_size": b.quantize_group_size,
        "max_new_tokens": b.max_new_tokens,
    },
}


def check_attacks(names: list[str]) -> None:
    unknown = [n for n in names if n not in BUDGETED]
    if unknown:
        raise ValueError(
            f"benchmark --audit {','.join(unknown)}: unknown attack; known: {', '.join(BUDGETED)}"
        )


def gap_figure(result: dict[str, Any]) -> tuple[float | None, str | None]:
    """An attack result's gap_closed, from its forget NLL before, after and on the original;
    with a note saying why when it is None."""
    from lm_unlearn.analysis.attacks.verdict import MIN_GAP, gap_closed

    if "skipped" in result:
        return None, f"skipped: {result['skipped']}"
    before, after = result["before"]["nll"], result["after"]["nll"]
    target = result["original"]["nll"]
    value = gap_closed(before, after, target)
    if value is None:
        return None, (
            f"no gap to close: forget NLL {before:.3f} after unlearning vs {target:.3f} for the "
            f"target (a gap under {MIN_GAP} nats)"
        )
    return value, None


def audit_run(run_dir: Path, attacks: list[str], budget: AuditBudget) -> dict[str, dict[str, Any]]:
    """The named attacks on a finished run: `{name: {"gap_closed", "note", "budget", "result"}}`,
    cached attacks at the same budget reused."""
    path = RunDir(run_dir).benchmark_audit
    cache = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    options = {name: BUDGETED[name](budget) for name in attacks}
    todo = [name for name in attacks if cache.get(name, {}).get("budget") != options[name]]
    if todo:
        run_attacks(Path(run_dir), {name: options[name] for name in todo}, cache, path)
    return {name: cache[name] for name in attacks}


def run_attacks(run_dir: Path, options: dict[str, dict], cache: dict, path: Path) -> None:
    """Run each attack with its options, saving the cache after each one."""
    from lm_unlearn.analysis.attacks import ATTACKS
    from lm_unlearn.analysis.audit import load_pair, read_run
    from lm_unlearn.data import read_records

    try:
        manifest, forget_cfg = read_run(run_dir)
    except UnlearnError as exc:  # e.g. a method that keeps no model (icu's prompt wrapper)
        for name, opts in options.items():
            cache[name] = {"budget": opts, "gap_closed": None, "note": f"not audited: {exc}"}
        atomic_write_json(path, cache)
        return
    records = read_records(forget_cfg, "forget")
    original, unlearned, fmt = load_pair(run_dir, manifest)
    for name, opts in options.items():
        log.info("attack %s on %s", name, run_dir.name)
        try:
            result = ATTACKS[name](unlearned.model, fmt, records, original=original, **opts)
        except UnlearnError as exc:  # e.g. relearn on a forget set of one record
            cache[name] = {"budget": opts, "gap_closed": None, "note": f"not audited: {exc}"}
        else:
            value, note = gap_figure(result)
            cache[name] = {"budget": opts, "gap_closed": value, "note": note, "result": result}
        atomic_write_json(path, cache)
