"""Tests marked `cuda` need a CUDA GPU and are skipped without one. `FISHLEG_TUNE` is the
installed command, which tests of what users type run in a subprocess (not `python -m`,
which puts the current folder on the path and hides packaging mistakes)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FISHLEG_TUNE = str(Path(sys.executable).with_name("fishleg-tune"))


def fishleg_tune(
    *args: str, cwd: Path | str = ROOT, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the installed `fishleg-tune ARGS` from `cwd` (the repository root by default). A run
    still going after `timeout` seconds fails the test with the Python stack of each of its
    threads (faulthandler's dump on SIGABRT), so a hang says where it hangs; then its process
    group (the local Ray it started) is stopped."""
    env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}
    cmd = [FISHLEG_TUNE, *args]
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # and the Ray processes it started, by its process group
        shown = f"stdout:\n{out[-3000:]}\nits threads:\n{err[-30000:]}"
        pytest.fail(f"`fishleg-tune {' '.join(args)}` still ran after {timeout} s; {shown}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# The test files that take longest (`make test`'s durations summed per file on 2 cores, most
# first). `make test` runs two workers taking one file at a time; handed out longest first,
# the files keep both workers busy to the end instead of leaving one long file for last.
LONGEST_FIRST = (
    "tests/tuning/integration/test_faults.py",
    "tests/tuning/integration/test_sweep.py",
    "tests/tuning/integration/test_workers.py",
    "tests/tuning/integration/test_cluster.py",
    "tests/tuning/integration/test_fit.py",
    "tests/examples/test_lightning.py",
    "tests/tuning/integration/test_own_package.py",
    "tests/tuning/integration/test_report_compare.py",
    "tests/tuning/integration/test_compare_verdicts.py",
    "tests/tuning/integration/test_warm_start.py",
    "tests/tuning/test_training.py",
    "tests/examples/test_charlm.py",
    "tests/examples/test_torchrun.py",
    "tests/fishleg/test_distributed.py",
    "tests/examples/test_huggingface.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first (a stable sort: each file's tests keep their order); without
    CUDA, the `cuda` tests skipped."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.path).relative_to(ROOT).as_posix(), len(rank)))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh where one is lent)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
