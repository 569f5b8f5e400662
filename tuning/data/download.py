"""Checksum-verified downloads into a data folder."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tuning.errors import DatasetUnavailable
from tuning.records.files import atomic_path

__all__ = ["fetch", "md5sum", "probe"]


def md5sum(path: Path) -> str:
    """The file's MD5 as hex (the checksum the data sets publish)."""
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(urls: list[str], dest: Path, md5: str, what: str) -> Path:
    """Return `dest` if it exists with the right checksum, else download it from the first
    URL that answers. Raises DatasetUnavailable with where to put the file by hand."""
    if dest.exists():
        if md5sum(dest) == md5:
            return dest
        raise DatasetUnavailable(f"{dest} exists but its MD5 is not {md5} ({what}); delete it or replace it.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        try:
            with atomic_path(dest) as tmp:  # a download cut short never stands as `dest`
                with urllib.request.urlopen(url, timeout=30) as response, tmp.open("wb") as out:
                    shutil.copyfileobj(response, out)
                if md5sum(tmp) != md5:
                    raise ValueError("checksum mismatch")
            return dest
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
    raise DatasetUnavailable(
        f"{what} is not in {dest.parent} and could not be downloaded ({'; '.join(errors)}). "
        f"Put {dest.name} (MD5 {md5}) in {dest.parent}, or set the workload's data_dir to a folder that has it."
    )


def probe(urls: list[str], dest: Path, md5: str, what: str) -> None:
    """Whether `fetch` could get the file: on disk already, or some URL answers a HEAD request
    (in seconds). Raises fetch's DatasetUnavailable otherwise, before any work has started."""
    if dest.exists():
        return
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10):
                return
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise DatasetUnavailable(
        f"{what} is not in {dest.parent} and could not be downloaded ({'; '.join(errors)}). "
        f"Put {dest.name} (MD5 {md5}) in {dest.parent}, or set the workload's data_dir to a folder that has it."
    )
