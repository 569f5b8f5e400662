"""One driver per sweep folder: an OS file lock (`flock`) on STORAGE/NAME/driver.lock, held
for as long as a `search` or `resume` drives the sweep. The kernel releases it when the
driver's process ends, however it ends, so a SIGKILLed driver never leaves a stale lock; the
file's text (PID, host, start time) only names the holder in the refusal."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuning.errors import UserError

__all__ = ["LOCK_FILE", "driver_lock", "holder"]

LOCK_FILE = "driver.lock"


@contextmanager
def driver_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold the lock of sweep `folder` (made if missing) while the block runs; if another
    process holds it, a UserError names that process. `command`: what this one is doing, for
    the holder's description ("search", "resume"). A folder made here and left holding only the
    lock (a start refused before it wrote anything) is removed again."""
    made = not folder.exists()
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    except OSError as exc:
        raise UserError(
            f"--storage-path: cannot write to {folder} ({exc.strerror}); choose a writable folder."
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(
                f"{folder} is in use by another fishleg-tune driver ({holder}); one driver at a time drives a "
                "sweep. Wait for it to end (or stop it: its trials and records are kept for "
                f"`fishleg-tune resume {folder}`), or choose another --name."
            ) from None
        handle.seek(0)
        handle.truncate()
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        handle.write(f"`fishleg-tune {command}`, PID {os.getpid()} on {socket.gethostname()}, since {started}")
        handle.flush()
        yield
    finally:
        if made and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            path.unlink()
            folder.rmdir()
        handle.close()  # releases the lock


def holder(folder: Path) -> str | None:
    """Who drives the sweep in `folder` now (the lock file's text), or None when no one does."""
    path = folder / LOCK_FILE
    if not path.exists():
        return None
    with path.open() as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
    return None
