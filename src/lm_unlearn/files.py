"""Atomic writes and content hashes: nothing half-written, every input recorded."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that readers see either the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def atomic_directory(target: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a directory in a temporary sibling, then rename it onto `target`.

    `fill(tmp_dir)` writes the content. An interrupted build leaves only a `.tmp-*` sibling,
    which readers ignore and a later build removes once the process that made it is gone;
    builds of the same target in other live processes keep theirs, and the final swap happens
    under a lock on the parent directory, so concurrent builds end with one whole directory.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    owner = f"{socket.gethostname()}-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-{owner}"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; give the usual mode
        fill(tmp)
        with _locked(target.parent):
            if target.exists():
                old = target.with_name(f".old-{target.name}")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive flock on the directory itself (no lock file left behind)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _owner_alive(host: str, pid: str) -> bool:
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's build (shared disk): not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned(target: Path, legacy_age_s: float = 86400.0) -> None:
    """Remove `.tmp-<name>-<host>-<pid>-*` siblings whose building process has ended.

    Temporary directories without an owner (made by older versions) go once a day old.
    """
    prefix = f".tmp-{target.name}-"
    for stale in target.parent.glob(f"{prefix}*"):
        parts = stale.name[len(prefix) :].rsplit("-", 2)
        if len(parts) == 3:
            if _owner_alive(parts[0], parts[1]):
                continue
        else:
            try:
                if time.time() - stale.stat().st_mtime < legacy_age_s:
                    continue
            except OSError:
                continue
        shutil.rmtree(stale, ignore_errors=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | Path) -> dict[str, str]:
    """SHA-256 of every regular file below `root`, keyed by relative path (sorted)."""
    root = Path(root)
    if root.is_file():
        return {root.name: sha256_file(root)}
    return {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def link_tree(source: Path, target: Path) -> None:
    """`target` as a copy of the directory `source`, hard-linked file by file where the file
    system allows it (no second copy of the weights); an existing `target` is replaced."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, copy_function=link)
