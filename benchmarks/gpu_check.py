"""The GPU checks in one run, for the lent GPU machine as it is (its own python3 and torch, the
project's few missing packages installed from wheels by gpu_check.sh). Prints one JSON
summary line per check and writes them all to one JSON file:

- `card`: the device, torch and CUDA versions, and where pydantic was imported from;
- `cuda_tests`: the `cuda`-marked tests (placement, CPU/GPU agreement, no host sync in
  `step()` under CUDA's own sync check, autocast/bf16, the quadratic step and adaptive
  damping); tests/tuning/test_cuda.py only where Ray is installed;
- `step_time`: benchmarks/step_time.py on CUDA (the paper's autoencoder, ResNet-20 and the
  transformer example, FishLeg ÷ Adam at an aux step every 10 and every step, ms per step,
  peak memory);
- `width_scaling`: benchmarks/width_scaling.py on CUDA at widths 512 to 2048 (every optimizer's
  step time and state against AdamW's, FishLeg's aux step against its floor).

Without a GPU the tests are collected and skipped and the step-time benchmark is skipped, each
with the reason, and the width table runs at two small widths on the CPU (its imports, SOAP and
Shampoo from the wheels, checked between loans), so CI runs this script too
(tests/test_gpu_check.py).

    python benchmarks/gpu_check.py --out gpu-check/gpu_check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CUDA_TESTS = ["tests/fishleg/test_cuda.py", "tests/tuning/test_cuda.py"]


class Outcomes:
    """A pytest plugin that counts outcomes and keeps the failures' names."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.failed: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count each test once: its call, or the phase that failed or skipped it."""
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] = self.counts.get(report.outcome, 0) + 1
            if report.outcome == "failed":
                self.failed.append(report.nodeid)


def card() -> dict[str, Any]:
    """What ran: the device, the versions, and where the wheels' pydantic came from."""
    import pydantic

    info: dict[str, Any] = {
        "check": "card",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "pydantic_from": str(Path(pydantic.__file__).parents[1]),
    }
    if torch.cuda.is_available():
        info.update({"device": torch.cuda.get_device_name(0), "cuda": torch.version.cuda})
    else:
        info["device"] = "none (no CUDA device visible)"
    return info


def cuda_tests() -> dict[str, Any]:
    """The cuda-marked tests, in this process (without a GPU they are collected and skipped)."""
    files = [f for f in CUDA_TESTS if "tuning" not in f or importlib.util.find_spec("ray") is not None]
    outcomes = Outcomes()
    started = time.perf_counter()
    code = pytest.main(["-q", "-m", "cuda", "-p", "no:cacheprovider", *(str(ROOT / f) for f in files)], [outcomes])
    result = {"check": "cuda_tests", "exit": int(code), **outcomes.counts, "failed_tests": outcomes.failed}
    result["files"] = files
    if len(files) < len(CUDA_TESTS):
        result["not_run"] = "tests/tuning/test_cuda.py: Ray is not installed here (its wheel is over the carry limit)"
    if not torch.cuda.is_available():
        result["note"] = "no CUDA device: every test skipped"
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def step_time(out: Path, steps: int, rounds: int) -> dict[str, Any]:
    """benchmarks/step_time.py on CUDA, in a child process (its own clean CUDA context)."""
    if not torch.cuda.is_available():
        return {"check": "step_time", "skipped": "no CUDA device"}
    file = out.with_name("step_time.json")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "step_time.py"), "--device", "cuda"]
    cmd += ["--steps", str(steps), "--rounds", str(rounds), "--out", str(file)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"check": "step_time", "exit": done.returncode, "error": done.stderr[-2000:]}
    return {"check": "step_time", **json.loads(file.read_text())}


def width_scaling(out: Path) -> dict[str, Any]:
    """benchmarks/width_scaling.py in a child process: widths 512 to 2048 on CUDA; without CUDA,
    widths 32 and 64 on the CPU, which checks the script and its imports, not speed."""
    cuda = torch.cuda.is_available()
    file = out.with_name("width_scaling.json")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "width_scaling.py"), "--out", str(file)]
    if cuda:
        cmd += ["--device", "cuda", "--widths", "512", "1024", "2048", "--rounds", "2"]
    else:
        cmd += ["--device", "cpu", "--widths", "32", "64", "--rounds", "1", "--profile-steps", "1"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"check": "width_scaling", "exit": 124, "error": "over 300 s; run it alone with fewer --widths"}
    if done.returncode != 0:
        return {"check": "width_scaling", "exit": done.returncode, "error": done.stderr[-2000:]}
    result = {"check": "width_scaling", **json.loads(file.read_text())}
    if not cuda:
        result["note"] = "no CUDA device: two small widths on the CPU, a check of the script, not of speed"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-check/gpu_check.json"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    checks = (card, cuda_tests, lambda: step_time(args.out, args.steps, args.rounds), lambda: width_scaling(args.out))
    for check in checks:
        results.append(check())
        print(json.dumps(results[-1]), flush=True)
        args.out.write_text(json.dumps(results, indent=1))  # what ran so far survives a timeout
    failed = any(r.get("exit", 0) != 0 for r in results)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
