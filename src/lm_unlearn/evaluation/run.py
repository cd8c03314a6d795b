"""Evaluating a run directory: its unlearned model (model/, adapter/ or an icu prompt wrapper)
against the original, on the run's own data sets unless told otherwise. `unlearn run` calls
`evaluate_run` at the end, `unlearn eval` calls `evaluate_target`, the benchmark grid calls
`evaluate_run` per run."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import yaml

from lm_unlearn.errors import UnlearnError
from lm_unlearn.manifest import source_revision, verify_outputs
from lm_unlearn.rundir import RunDir, is_run_dir, read_manifest

log = logging.getLogger(__name__)


def load_run_model(run_dir: Path, original_spec: str, revision: str | None = None):
    """The unlearned model of a run: run_dir/model, else the original with run_dir/adapter merged,
    or for in-context unlearning (icu) the original with the run's prompt wrapper.

    The weights are first checked against the hashes the run's manifest recorded; `revision` is
    the original's hub revision.
    """
    from dataclasses import replace

    from lm_unlearn.methods.icu import load_wrapper
    from lm_unlearn.models import LoadedModel, load_model

    verify_outputs(run_dir, read_manifest(run_dir))
    wrapper = load_wrapper(run_dir)
    if wrapper is not None:
        log.warning("evaluating an in-context unlearning run: %s", wrapper.warning)
        return replace(load_model(original_spec, revision=revision), prompt_prefix=wrapper.prefix)

    paths = RunDir(run_dir)
    if (paths.model / "config.json").is_file():
        return load_model(str(paths.model))
    if (paths.adapter / "adapter_config.json").is_file():
        from peft import PeftModel

        base = load_model(original_spec, revision=revision)
        merged = PeftModel.from_pretrained(base.model, str(paths.adapter)).merge_and_unload()
        return LoadedModel(merged, base.tokenizer, str(paths.adapter), str(paths.adapter))
    raise UnlearnError(f"{run_dir} holds neither model/ nor adapter/; has the run finished?")


def run_eval_config(run_dir: Path, data: Path | None = None, **overrides):
    """EvalConfig for a run: its data sets and prompt template, unless `data` gives others."""
    from lm_unlearn.evaluation.config import load_eval_config

    run_cfg = yaml.safe_load(RunDir(run_dir).config.read_text()) or {}
    model_cfg = run_cfg.get("model", {})
    own = {
        "template": model_cfg.get("template"),
        "system_prompt": model_cfg.get("system_prompt"),
        "redact": run_cfg.get("redact") or None,  # a redacted run stays redacted
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    return load_eval_config(data or RunDir(run_dir).config, **(own | given))


def evaluate_run(
    run_dir: Path,
    original_spec: str | None = None,
    cfg=None,
    retain_model: str | None = None,
    reference_model: str | None = None,
) -> Path:
    """Evaluate run_dir's unlearned model against the original; write eval.json and report.html.

    run_dir: a finished `unlearn run` directory (manifest.json, config.yaml, model/ or adapter/).
    original_spec: the model before unlearning; None reads it from the run's manifest.
    cfg: an EvalConfig; None uses the run's own data sets (the demo sets for the demo).
    retain_model: optionally a model trained without the forget set (PrivLeak, forget quality).
    reference_model: without a retain_model, another model that never saw the forget set (the
    reference-model membership attack; skipped when neither is given).
    Returns the path of report.html. Cost figures come from the run's metrics.jsonl/manifest.
    """
    from lm_unlearn.evaluation import evaluate, load_eval_data
    from lm_unlearn.evaluation.cost import run_cost
    from lm_unlearn.models import load_model
    from lm_unlearn.report import write_outputs
    from lm_unlearn.report.html import run_title

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    own = (manifest.source_model or {}).get("spec") or manifest.config["model"]["name"]
    original_spec = original_spec or own
    revision = source_revision(manifest) if original_spec == own else None
    cfg = cfg or run_eval_config(run_dir)
    data = load_eval_data(cfg, validation_records(run_dir))
    model = load_run_model(run_dir, original_spec, revision)  # checks the run's hashes first
    original = load_model(original_spec, revision=revision)
    result = evaluate(
        model, data, cfg, original=original, retain_model=retain_model, reference_model=reference_model
    )
    n_params = sum(p.numel() for p in original.model.parameters())
    result["run_cost"] = run_cost(run_dir, n_params)
    result["info"]["run_dir"] = str(run_dir)
    _, report = write_outputs(result, run_dir, run_title(run_dir), cfg.redact)
    return report


def validation_records(run_dir: Path) -> dict[str, list[str]] | None:
    """Digests of the run's validation splits: they steered its training, so they are never
    evaluation data (the evaluation leaves them out)."""
    held = RunDir(run_dir).validation
    return json.loads(held.read_text()) if held.is_file() else None


def evaluate_target(
    model: str,
    original: str | None,
    retain_model: str | None,
    reference_model: str | None,
    data,
    out,
    overrides: dict,
) -> Path:
    """`unlearn eval`: evaluate a run directory (written into it unless `out`) or any model;
    return the path of report.html."""
    from lm_unlearn.evaluation import evaluate, load_eval_config, load_eval_data
    from lm_unlearn.models import load_model
    from lm_unlearn.report import write_outputs

    path = Path(model)
    if is_run_dir(path) and out is None:
        cfg = run_eval_config(path, data, **overrides)
        return evaluate_run(path, original, cfg, retain_model, reference_model)
    leave_out = None
    if is_run_dir(path):
        cfg = run_eval_config(path, data, **overrides)
        manifest = read_manifest(path)
        revision = source_revision(manifest) if original is None else None
        original = original or (manifest.source_model or {}).get("spec")
        loaded = load_run_model(path, original, revision)
        original = load_model(original, revision=revision) if original else None
        leave_out = validation_records(path)
    else:
        cfg = load_eval_config(data, **overrides)
        loaded = model
    data = load_eval_data(cfg, leave_out)
    result = evaluate(
        loaded, data, cfg, original=original, retain_model=retain_model, reference_model=reference_model
    )
    target = out or (path if is_run_dir(path) else Path(f"eval-{datetime.now():%Y%m%d-%H%M%S}"))
    _, report = write_outputs(result, target, f"lm-unlearn evaluation: {model}", cfg.redact)
    return report
