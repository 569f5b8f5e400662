"""How long `fishleg-tune` takes to answer what needs no training stack: `--help`, a missing
file, a pipe given as a sweep file. Each is timed against `python -c pass` run side by side
(alternating, medians of --rounds), so the ratio says what the command adds to Python's own
start-up; prints one JSON line.

    python benchmarks/cli_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    tool = shutil.which("fishleg-tune") or str(Path(sys.executable).parent / "fishleg-tune")
    with tempfile.TemporaryDirectory() as tmp:
        fifo = Path(tmp) / "sweep.yaml"
        os.mkfifo(fifo)
        cases = {
            "help": [tool, "--help"],
            "missing_file": [tool, "search", str(Path(tmp) / "missing.yaml")],
            "pipe_as_file": [tool, "train", str(fifo)],
        }
        baseline = [sys.executable, "-c", "pass"]
        times: dict[str, list[float]] = {name: [] for name in ["python", *cases]}
        for _ in range(args.rounds):
            for name, command in [("python", baseline), *cases.items()]:
                times[name].append(seconds(command))
    median = {name: statistics.median(values) for name, values in times.items()}
    summary = {"benchmark": "cli_startup", "rounds": args.rounds}
    summary.update({f"{name}_s": round(value, 3) for name, value in median.items()})
    summary.update({f"{name}_over_python": round(median[name] / median["python"], 1) for name in cases})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
