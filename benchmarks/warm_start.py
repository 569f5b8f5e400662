"""Warm starts measured with real sweeps: a grafted FishLeg sweep started from a finished AdamW
sweep of the same workload (`search.warm_start`) against the same sweep started cold, over
several search seeds.

One AdamW sweep (search_spaces/<workload>_adamw.yaml as shipped), then for each search seed a
cold and a warm-started search_spaces/<workload>_graft.yaml. For each pair: the cold sweep's
final best full-budget validation value, and how many trials (in start order) each sweep needs
to come within `--noise` of it (default: the standard deviation over seeds of the grafted
recipe's chosen config on that workload, docs/benchmarks.md). Prints one line per pair and,
last, one JSON line.

    python benchmarks/warm_start.py [--workload quickstart|curves] [--seeds 0 1 2] [--noise X] [--no-start-point]
        [--storage DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
from pathlib import Path

import tuning
from tuning.records.ledger import Ledger, TrialRecord
from tuning.records.status import Status
from tuning.sweep.spec import load_sweep

FILES = Path(__file__).resolve().parents[1] / "search_spaces"
# the seeds' standard deviation of the grafted file's chosen config (docs/benchmarks.md)
NOISE = {"quickstart": 0.0083, "curves": 0.58}


def trials_to_reach(records: list[TrialRecord], metric: str, budget: int, target: float) -> int | None:
    """How many trials, in the order they started, until one ran the full budget to `target` or below."""
    for i, record in enumerate(sorted(records, key=lambda r: r.started or 0.0), start=1):
        value = record.value(metric)
        if record.status == Status.COMPLETE and record.epochs >= budget and value is not None and value <= target:
            return i
    return None


def best(records: list[TrialRecord], metric: str, budget: int) -> float:
    """The best full-budget value of a sweep."""
    return min(r.value(metric) for r in records if r.status == Status.COMPLETE and r.epochs >= budget)


def sweep(file: Path, storage: Path, name: str, overrides: dict[str, object]) -> list[TrialRecord]:
    """The trials of sweep `name` of `file` in `storage`: run now, or read back if it finished there before."""
    folder = storage / name
    if not (folder / "best_config.yaml").exists():
        tuning.search(None, file, storage=storage, name=name, echo=lambda line: None, **overrides)
    return list(Ledger(folder / "trials.json").records.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(NOISE), default="quickstart", help="which sweep files' prefix")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds of the FishLeg sweeps")
    parser.add_argument("--noise", type=float, help="how close to the cold best counts as reaching it")
    parser.add_argument(
        "--no-start-point",
        action="store_true",
        help="leave out the FishLeg file's points_to_evaluate (its known-good recipe) in both sweeps",
    )
    parser.add_argument(
        "--storage",
        type=Path,
        help="keep the sweeps here (default: a temporary folder); a sweep already finished there is read back",
    )
    args = parser.parse_args()
    noise = NOISE[args.workload] if args.noise is None else args.noise
    fishleg_file, adamw_file = FILES / f"{args.workload}_graft.yaml", FILES / f"{args.workload}_adamw.yaml"
    spec = load_sweep(fishleg_file)
    metric, budget = spec.metric.name, spec.budget
    start = {"search.points_to_evaluate": []} if args.no_start_point else {}
    with contextlib.ExitStack() as stack:
        storage = args.storage or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        adamw_name = load_sweep(adamw_file).name
        adamw = sweep(adamw_file, storage, adamw_name, {})
        pairs = []
        for seed in args.seeds:
            runs = {
                kind: sweep(
                    fishleg_file,
                    storage,
                    f"graft_{kind}_{seed}",
                    {"search.seed": seed, "search.warm_start": warm, **start},
                )
                for kind, warm in (("cold", []), ("warm", [str(storage / adamw_name)]))
            }
            target = best(runs["cold"], metric, budget) + noise
            pair = {
                "seed": seed,
                "trials": len(runs["cold"]),
                "cold_best": best(runs["cold"], metric, budget),
                "warm_best": best(runs["warm"], metric, budget),
                "cold_trials_to_target": trials_to_reach(runs["cold"], metric, budget, target),
                "warm_trials_to_target": trials_to_reach(runs["warm"], metric, budget, target),
            }
            print(pair, flush=True)
            pairs.append(pair)
    needed = [p["warm_trials_to_target"] for p in pairs]
    summary = {
        "benchmark": "warm_start",
        "workload": spec.workload.name,
        "noise": noise,
        "start_point": not args.no_start_point,
        "adamw_complete_trials": sum(r.status == Status.COMPLETE for r in adamw),
        "pairs": pairs,
        "warm_trials_to_cold_best_median": statistics.median(n if n is not None else float("inf") for n in needed),
        "quarter_of_cold_trials": pairs[0]["trials"] / 4 if pairs else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
