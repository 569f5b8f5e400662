"""Files that a crash (a SIGKILL, a full disk) never leaves half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "unwritable", "write_atomically"]


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` (atomic on one
    filesystem) when the block ends without an error, removed when it raises."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def unwritable(folder: Path) -> str | None:
    """Why `folder` could not be made and written (None if it could), found without making it:
    a folder is made and removed at once in the nearest folder above it that exists (permission
    bits say nothing to root, or of /proc)."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fishleg-probe-", dir=existing))
    except OSError as exc:
        return f"{existing}: {exc.strerror}"
    return None
