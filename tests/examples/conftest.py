"""Running an example the way its docstring does (`python -m examples.X.train`, or under
torchrun), from the repository root, with a FishLeg config file written for the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(*command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m COMMAND...` (or the installed tool COMMAND[0] when it is not a module), from
    the repository root; fails the test with the output's tail unless it exits 0."""
    executable = Path(sys.executable).with_name(command[0])
    argv = [str(executable), *command[1:]] if executable.exists() else [sys.executable, "-m", *command]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture
def digits_config(tmp_path: Path) -> Path:
    """A FishLeg best config for the digits MLP (a sweep's output format, `optimizer:` section)."""
    path = tmp_path / "best_config.yaml"
    path.write_text(
        "optimizer: {name: fishleg, lr: 0.1, aux_lr: 0.001, aux_batch_size: 32, damping: 0.01,\n"
        "            update_aux_every: 5, q_init: kfac, q_structure: kron}\n"
    )
    return path
