"""Errors that are the user's to fix: the CLI prints their message (one paragraph) and exits 2.

Light to import (no torch): `fishleg-tune --help` and argument errors answer at once."""

from __future__ import annotations

import re
import sysconfig
from importlib.util import find_spec
from pathlib import Path

__all__ = [
    "ConfigError",
    "DatasetUnavailable",
    "NonFiniteLoss",
    "UserCodeError",
    "UserError",
    "user_frames",
]

FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<name>.+)$')


class UserError(Exception):
    """Bad input or environment: a clear message, no traceback, exit status 2."""


class ConfigError(UserError, ValueError):
    """An invalid file or option; the message is one paragraph naming the file and key."""


class DatasetUnavailable(UserError):
    """A data set is neither on disk nor downloadable."""


class UserCodeError(Exception):
    """The user's own code (a training function's or plugin's module) raised: named as theirs,
    with the line of their file it came from; exit status 1 (not bad input to this tool)."""


class NonFiniteLoss(RuntimeError):
    """Training produced NaN/inf; the last good checkpoint is kept."""


def user_frames(trace: str) -> list[str]:
    """The frames of a traceback's text that are in the user's own files (not Python's, an
    installed library's, Ray's or this toolkit's), each once, as 'path:line in name: code'."""
    ours = [Path(find_spec("fishleg").origin).parent, Path(__file__).parent]
    libraries = [Path(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib")]
    lines = trace.splitlines()
    frames = []
    for i, line in enumerate(lines):
        match = FRAME.match(line)
        if match is None:
            continue
        path = Path(match["path"])
        if path.name.startswith("<") or any(path.is_relative_to(d) for d in ours + libraries):
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not FRAME.match(lines[i + 1]) else ""
        frame = f"{path}:{match['line']} in {match['name']}" + (f": {code}" if code else "")
        if frame not in frames:  # a chained exception repeats its frames
            frames.append(frame)
    return frames
