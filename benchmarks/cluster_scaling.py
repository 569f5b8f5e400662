"""Trials per minute of one sweep on a 1-node and a 2-node loopback Ray cluster (1 CPU per
node), and their ratio (target ≥ 1.8). Throughput is measured from the first trial's start
to the last trial's end in the sweep's ledger, so driver start-up is not counted.
Prints one JSON line at the end.

    python benchmarks/cluster_scaling.py [--trials 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, beside benchmarks/
from tests.loopback import loopback_cluster  # noqa: E402

SPEC = {
    "name": "scaling",
    "workload": {"name": "digits_classifier", "hidden": [256, 256]},
    "optimizer": {"name": "fishleg", "update_aux_every": 10, "aux_batch_size": 32},
    "training": {"epochs": 4, "batch_size": 16, "seed": 0, "device": "cpu"},
    "metric": {"name": "val_loss", "mode": "min"},
    "space": {"optimizer.lr": {"type": "float", "low": 1e-2, "high": 0.3, "log": True}},
    "search": {"sampler": "random", "seed": 0, "num_samples": 8, "max_concurrent": 2},
    "scheduler": {"type": "none"},
    "resources": {"cpu": 1},
}


def trials_per_minute(workers: int, trials: int, folder: Path) -> float:
    spec = folder / f"scaling{workers}.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "search": {**SPEC["search"], "num_samples": trials}}))
    with loopback_cluster(workers=workers) as cluster:
        out = cluster.cli(*cluster.sweep_args(spec, folder / f"runs{workers}"))
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    records = json.loads((folder / f"runs{workers}" / "scaling" / "trials.json").read_text())
    span = max(r["ended"] for r in records) - min(r["started"] for r in records)
    return 60.0 * len(records) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = trials_per_minute(0, args.trials, Path(tmp))
        two = trials_per_minute(1, args.trials, Path(tmp))
    print(f"1 node: {one:.2f} trials/min   2 nodes: {two:.2f} trials/min", file=sys.stderr)
    print(
        json.dumps(
            {
                "benchmark": "cluster_scaling",
                "trials": args.trials,
                "one_node_trials_per_min": one,
                "two_node_trials_per_min": two,
                "ratio": two / one,
            }
        )
    )


if __name__ == "__main__":
    main()
