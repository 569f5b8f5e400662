"""Installed package versions, read in one place: exported configs record them, and the
cluster preflight compares them across nodes."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["NOT_INSTALLED", "package_versions"]

NOT_INSTALLED = "not installed"  # written into best_config.yaml files: keep the words


def package_versions(packages: tuple[str, ...], with_python: bool = False) -> dict[str, str]:
    """{package: version or NOT_INSTALLED}, with "python" first if asked."""
    out = {"python": platform.python_version()} if with_python else {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = NOT_INSTALLED
    return out
