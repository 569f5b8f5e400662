"""Tests marked `cuda` need a CUDA GPU and are skipped without one. `FISHLEG_TUNE` is the
installed command, which tests of what users type run in a subprocess (not `python -m`,
which puts the current folder on the path and hides packaging mistakes)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FISHLEG_TUNE = str(Path(sys.executable).with_name("fishleg-tune"))


def fishleg_tune(*args: str, cwd: Path | str = ROOT, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `fishleg-tune ARGS` from `cwd` (the repository root by default)."""
    return subprocess.run([FISHLEG_TUNE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh where one is lent)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
