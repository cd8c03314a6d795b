"""Checks on a run directory made before any model loads, so a bad name, an unwritable
output directory or a resume that cannot work fails in a second, with one line that says why."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from lm_unlearn.config import RunConfig
from lm_unlearn.errors import UnlearnError
from lm_unlearn.rundir import Manifest, RunDir, read_manifest, write_manifest


def check_writable(directory: Path) -> None:
    """Create `directory` if needed and write (then remove) a file in it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UnlearnError(
            f"{directory}: cannot write there ({exc.strerror or exc}); choose a writable output_dir "
            "(--set output_dir=...) or free the space"
        ) from None


def new_run_dir(cfg: RunConfig) -> Path:
    """The directory a new run writes: output_dir/name, which must lie inside output_dir, be
    empty or absent, and be writable."""
    name = cfg.name or f"{cfg.method or 'custom'}-{datetime.now():%Y%m%d-%H%M%S}"
    output = Path(cfg.output_dir)
    run_dir = output / name
    # A symlink named like the run could still lead elsewhere; compare real paths.
    if Path(os.path.realpath(run_dir)).parent != Path(os.path.realpath(output)):
        raise UnlearnError(
            f"run directory {run_dir} would lie outside output_dir {output} (a link?); choose another "
            "name (--set name=...)"
        )
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UnlearnError(
            f"{run_dir} already exists; use --resume {run_dir} or another name (--set name=...)"
        )
    check_writable(output)
    return run_dir


def check_resumable(run_dir: Path) -> None:
    """A run directory that `unlearn run --resume` can continue: config and manifest present, not
    finished, writable."""
    if not RunDir(run_dir).config.is_file():
        raise UnlearnError(f"{run_dir} is not a run directory (no config.yaml)")
    manifest = read_manifest(run_dir)
    if manifest.status == "finished":
        raise UnlearnError(
            f"{run_dir} has already finished ({manifest.steps} steps, {manifest.finished}); "
            "resuming would train it again from its last checkpoint and rewrite its metrics. Start a "
            "new run instead (--set name=...)"
        )
    check_writable(run_dir)


def save_failed(run_dir: Path, manifest: Manifest, exc: OSError) -> UnlearnError:
    """Record a failed final save (e.g. a full disk) in the manifest, so it does not stay
    "running" unexplained, and return the error to raise."""
    reason = f"{exc.filename or run_dir}: {exc.strerror or exc}"
    manifest.update({"status": "failed", "error": f"saving the outputs failed: {reason}"})
    try:
        write_manifest(run_dir, manifest)
    except OSError:
        pass  # the disk may still be full; the message below says what happened
    return UnlearnError(
        f"saving the outputs failed: {reason}; free space, then continue with "
        f"`unlearn run --resume {run_dir}` (from its last checkpoint, if any)"
    )
