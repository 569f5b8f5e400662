"""Ray processes a killed local sweep leaves behind.

A driver killed with SIGKILL (alone, not with its process group) takes Ray's GCS and raylet
with it, but Ray's dashboard and runtime-env agents live on. A local sweep records the Ray
processes it started, with their start times (so a reused PID is never mistaken for one of
them); `resume` reports those still alive and how to stop them. Linux only (/proc); elsewhere
nothing is recorded or reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tuning.records.files import write_atomically

__all__ = ["FILE", "descendants", "leftovers", "record_ray_processes", "stat_fields"]

FILE = "ray_processes.json"
_PROC = Path("/proc")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state, ppid, …; field 3 of stat(5) is index 0),
    or None if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(root: int) -> list[int]:
    """PIDs below `root` in the process tree (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(int(stat.parent.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None
    if it is gone or a zombie."""
    fields = stat_fields(pid)
    return None if fields is None or fields[0] == "Z" else fields[19]


def _name(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_text().replace("\0", " ").strip()[:80] or "?"
    except OSError:
        return "?"


def record_ray_processes(folder: Path) -> None:
    """Write the driver and the Ray processes it started (its descendants now) to FILE."""
    if not _PROC.is_dir():
        return
    pids = [os.getpid(), *descendants(os.getpid())]
    entries = [{"pid": pid, "started": _started(pid), "name": _name(pid)} for pid in pids]
    write_atomically(folder / FILE, json.dumps([e for e in entries if e["started"] is not None], indent=1))


def leftovers(folder: Path) -> list[tuple[int, str]]:
    """(pid, name) of recorded Ray processes still running, if the driver that recorded them
    is gone; empty while that driver lives, or if nothing was recorded."""
    path = folder / FILE
    if not path.exists() or not _PROC.is_dir():
        return []
    try:
        entries = json.loads(path.read_text())
        driver, *ray_processes = entries
    except (ValueError, TypeError, KeyError):
        return []
    if _started(driver.get("pid", -1)) == driver.get("started"):
        return []
    return [(e["pid"], e["name"]) for e in ray_processes if _started(e["pid"]) == e["started"]]
