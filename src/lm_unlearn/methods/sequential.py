"""Sequential unlearning: forget requests applied one after another (`data.requests`).

Request i trains from request i-1's output model, in run_dir/requests/NN/ (a complete run
directory each); run_dir/manifest.json keeps one entry per request, and run_dir/model holds
the final model. A resumed run skips finished requests and resumes the interrupted one.
"""

from __future__ import annotations

from pathlib import Path

from lm_unlearn.config import RunConfig
from lm_unlearn.engine import train
from lm_unlearn.files import link_tree, sha256_tree
from lm_unlearn.manifest import now
from lm_unlearn.rundir import MODEL, Manifest, RunDir, RunResult, read_manifest, write_manifest


def run_sequential(cfg: RunConfig, run_dir: Path, resume: bool = False) -> RunResult:
    run_dir.mkdir(parents=True, exist_ok=True)
    entries, history, model_spec = [], [], cfg.model.name
    result = None
    for index, request in enumerate(cfg.data.requests):
        sub_dir = run_dir / "requests" / f"{index:02d}"
        sub = cfg.model_copy(deep=True)
        sub.data.requests = None
        sub.data.forget = request
        sub.model.name = model_spec
        sub.save.merge = True  # the next request starts from a full model
        started = RunDir(sub_dir).manifest.is_file()
        manifest = read_manifest(sub_dir, missing_ok=True)
        if manifest.status == "finished":
            steps, stop_reason = manifest.steps, manifest.stop_reason
        else:
            result = train(sub, sub_dir, resume=resume and started)
            manifest = read_manifest(sub_dir)
            steps, stop_reason = result.steps, result.stop_reason
            history.extend({"request": index, **row} for row in result.history)
        model_spec = str(RunDir(sub_dir).model)
        entries.append(
            {
                "request": index,
                "forget": manifest.data["forget"],
                "run_dir": str(sub_dir.relative_to(run_dir)),
                "started_from": sub.model.name,
                "steps": steps,
                "stop_reason": stop_reason,
                "final": manifest.final,
                "model_sha256": (manifest.outputs or {}).get("model", {}).get("sha256"),
            }
        )
    link_tree(Path(model_spec), RunDir(run_dir).model)
    manifest = Manifest(
        tool="lm-unlearn",
        kind="sequential",
        status="finished",
        finished=now(),
        config=cfg.model_dump(mode="json"),
        requests=entries,
        outputs={"model": {"path": MODEL, "sha256": sha256_tree(RunDir(run_dir).model)}},
    )
    write_manifest(run_dir, manifest)
    steps = sum(e["steps"] for e in entries)
    reason = f"{len(entries)} requests applied in order"
    return RunResult(run_dir=run_dir, steps=steps, stop_reason=reason, history=history)
