"""In-context unlearning (Pawelczyk, Neel & Lakkaraju, ICML 2024): no weight changes at all.

The "unlearned model" is the original model plus a prompt wrapper: a few forget prompts
answered with refusals are put before every question, asking the model to behave as if it
did not know them. WARNING: this protects nothing against anyone who holds the weights or
can change the prompt; the knowledge is fully present. It is a baseline for comparison.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from lm_unlearn.config import RunConfig
from lm_unlearn.data import read_records
from lm_unlearn.data.demo import demo_dataset
from lm_unlearn.data.records import Record
from lm_unlearn.data.sampling import read_refusals
from lm_unlearn.files import atomic_write_text
from lm_unlearn.manifest import data_entry, now
from lm_unlearn.rundir import PROMPT_WRAPPER, Manifest, RunDir, RunResult, write_manifest

WARNING = (
    "in-context unlearning changes no weights: anyone with the weights or control of the prompt "
    "still gets the forgotten knowledge"
)
INSTRUCTION = (
    "You do not know anything about the topics of the questions below. "
    "Answer such questions with a refusal.\n\n"
)


@dataclass(frozen=True)
class IcuWrapper:
    prefix: str
    warning: str = WARNING

    def __call__(self, prompt: str) -> str:
        return self.prefix + prompt


def build_wrapper(forget: list[Record], refusals: list[str], examples: int = 4) -> IcuWrapper:
    """INSTRUCTION, then the first `examples` forget prompts each answered with a refusal."""
    demos = [r for r in forget if not r.is_text][:examples]
    lines = [f"Q: {r.prompt}\nA: {refusals[i % len(refusals)]}\n\n" for i, r in enumerate(demos)]
    return IcuWrapper(prefix=INSTRUCTION + "".join(lines) + "Q: ")


def save_wrapper(wrapper: IcuWrapper, path: Path) -> None:
    atomic_write_text(path, json.dumps({"kind": "icu", **asdict(wrapper)}, indent=2))


def load_wrapper(run_dir: Path) -> IcuWrapper | None:
    """The run's prompt wrapper (run_dir/icu.json) for evaluation, or None for weight-based runs."""
    path = RunDir(run_dir).prompt_wrapper
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return IcuWrapper(prefix=data["prefix"], warning=data.get("warning", WARNING))


def run_icu(cfg: RunConfig, run_dir: Path, resume: bool = False) -> RunResult:
    """The procedure (`recipe("icu", ..., procedure="icu")`): write the prompt wrapper and a
    manifest; no model is loaded or trained, so resuming simply writes them again."""
    forget_cfg = cfg.data.forget or demo_dataset("forget")
    records = read_records(forget_cfg, "forget")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_wrapper(build_wrapper(records, read_refusals(cfg.data.refusals)), RunDir(run_dir).prompt_wrapper)
    manifest = Manifest(
        tool="lm-unlearn",
        kind="icu",
        status="finished",
        finished=now(),
        warning=WARNING,
        config=cfg.model_dump(mode="json"),
        data={"forget": data_entry(forget_cfg.path, records)},
        outputs={"model_spec": cfg.model.name, "prompt_wrapper": PROMPT_WRAPPER},
    )
    write_manifest(run_dir, manifest)
    atomic_write_text(RunDir(run_dir).config, yaml.safe_dump(cfg.model_dump(mode="json")))
    return RunResult(run_dir=run_dir, steps=0, stop_reason="icu: no training (prompt wrapper only)")
