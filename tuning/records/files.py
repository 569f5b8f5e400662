"""Files that a crash (a SIGKILL, a full disk) never leaves half-written."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_atomically"]


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
