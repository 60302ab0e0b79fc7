"""Generic file helpers: atomic writes of any file, text and JSON.

Every output of both packages goes through `atomic_path`: the new content is written to a
temporary file beside the target and renamed over it, so a reader, or a run resumed after a crash,
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputError


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success it replaces `path` (mode 0644).

    The temporary file is on the same filesystem, so the rename is atomic: a reader, or a run
    resumed after a crash, sees the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:  # on disk before the rename: survives an OS crash too
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, data) -> Path:
    """Write JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def check_writable(path, directory: bool = False) -> Path:
    """Fail early, before any work, when `path` (a file, or with `directory` a folder) cannot be
    written: `OutputError` (an OSError) with one line naming the path and the fix.

    Creates nothing: the nearest folder on the path that exists must be a writable directory (the
    atomic writes create the missing ones).
    """
    path = Path(path)
    folder = path if directory else path.parent
    if not directory and path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory; give a file path")
    if directory and path.exists() and not path.is_dir():
        raise OutputError(f"cannot write into {path}: it is a file, not a directory; give a "
                          "directory path")
    into = "into " if directory else ""
    existing = next(p for p in (folder, *folder.absolute().parents)
                    if os.path.lexists(p) or p == p.parent)
    if not existing.is_dir():
        raise OutputError(f"cannot write {into}{path}: {existing} is a file, not a directory; "
                          "choose a writable location")
    if not os.access(existing, os.W_OK | os.X_OK):  # no permission, or a read-only mount
        raise OutputError(f"cannot write {into}{path}: {existing} is not writable; choose a "
                          "writable location")
    return path
