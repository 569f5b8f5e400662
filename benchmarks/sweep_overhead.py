"""What the sweep machinery costs, and what ASHA saves.

1. Runs a sweep file through `fishleg-tune search` (Ray Tune + Optuna + ASHA + MLflow).
2. Retrains the same configs, one after another in this process with the threads a trial
   gets (its `resources.cpu`), for the epochs each trial actually ran: the compute the sweep
   had to do. Overhead = wall time minus that compute divided by the concurrency, as a
   fraction of the wall time: for the whole command (Ray start-up and MLflow set-up
   included) and for the trials alone (first trial start to last trial end), and where it
   goes: start-up, time inside trials outside their epochs, empty trial slots, teardown.
3. Retrains every config for the full budget: how close ASHA's best comes to the best of
   all trials at full budget, and at what fraction of the full-budget compute.
Prints one JSON line at the end.

    python benchmarks/sweep_overhead.py [search_spaces/quickstart.yaml]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from tuning.driver import run_sweep
from tuning.run.config import RunConfig
from tuning.sweep.spec import apply_params, load_sweep
from tuning.training import Trainer


def train_seconds(config: RunConfig, epochs: int) -> tuple[float, float]:
    """(wall seconds, final metric value) of `epochs` epochs of one config."""
    start = time.perf_counter()
    trainer = Trainer(config)
    metrics: dict[str, float] = {}
    for _ in range(epochs):
        metrics = trainer.run_epoch()
    return time.perf_counter() - start, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", type=Path, default=Path("search_spaces/quickstart.yaml"))
    args = parser.parse_args()
    spec = load_sweep(args.spec)
    with tempfile.TemporaryDirectory() as storage:
        wall_start = time.time()
        start = time.perf_counter()
        outcome = run_sweep(args.spec, storage=storage, echo=lambda _: None)
        sweep_s = time.perf_counter() - start
        records = list(json.loads((outcome.folder / "trials.json").read_text()))
    first_start, last_end = min(r["started"] for r in records), max(r["ended"] for r in records)
    span_s = last_end - first_start
    trial_walls = [r["ended"] - r["started"] for r in records]
    in_trial_epochs_s = sum(h.get("epoch_time_s", 0.0) for r in records for h in r["history"])
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    base = spec.base_config()
    metric, sign = spec.metric.name, (1 if spec.metric.mode == "min" else -1)
    sequential_s = full_s = 0.0
    full_values = []
    for rec in records:
        config = RunConfig.model_validate(apply_params(base, rec["params"]))
        seconds, _ = train_seconds(config, rec["epochs"])
        sequential_s += seconds
        seconds, final = train_seconds(config, spec.budget)
        full_s += seconds
        full_values.append(final.get(metric, float("nan")))
    concurrency = spec.search.max_concurrent
    ideal_s = sequential_s / concurrency
    best_full = min(full_values, key=lambda v: sign * v)
    epochs_run = sum(r["epochs"] for r in records)
    result = {
        "benchmark": "sweep_overhead",
        "spec": str(args.spec),
        "trials": len(records),
        "max_concurrent": concurrency,
        "sweep_s": sweep_s,
        "trials_span_s": span_s,
        "compute_s": sequential_s,
        "overhead_fraction": (sweep_s - ideal_s) / sweep_s,
        "trial_overhead_fraction": (span_s - ideal_s) / span_s,
        # where the overhead goes: before the first trial starts (Ray, MLflow, trial actors),
        # inside trials but outside their epochs (per-epoch report + checkpoint, set-up), trial
        # slots left empty (the tail, scheduling gaps), and after the last trial ends
        "startup_s": first_start - wall_start,
        "in_trial_overhead_s": sum(trial_walls) - in_trial_epochs_s,
        "in_trial_overhead_per_epoch_s": (sum(trial_walls) - in_trial_epochs_s) / sum(r["epochs"] for r in records),
        "empty_slot_s": span_s * concurrency - sum(trial_walls),
        "teardown_s": sweep_s - (last_end - wall_start),
        "asha_best": outcome.best.value if outcome.best else None,
        "full_budget_best": best_full,
        "asha_compute_fraction": epochs_run / (len(records) * spec.budget),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
