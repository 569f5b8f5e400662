"""Does the replay agree with real sweeps? For each strategy, real sweeps of the table's sweep
file (`fishleg-tune search` through the Python API, Ray Tune + Optuna + ASHA, one per search
seed) beside `--reps` replays of the same file and overrides on the table. Compared on the
best full-budget validation value after each ended trial (so the clocks of the two need not
match): a real sweep agrees when, after every trial, its best lies within the replays' 5-95%
range. Prints one line per real sweep and, last, one JSON line.

    python benchmarks/replay_check.py benchmarks/tables/digits_graft.csv [--seeds 0 1 2] [--reps 40] [--no-start-point]
        [--lookup nearest|surrogate]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import tuning
from tuning.records.ledger import Ledger
from tuning.records.status import Status
from tuning.replay.lookup import LOOKUPS
from tuning.replay.simulate import replay
from tuning.replay.table import load_table, recorded_spec
from tuning.run.overrides import parse_overrides
from tuning.sweep.spec import load_sweep

STRATEGIES = {"default (TPE + ASHA)": [], "random + ASHA": ["search.sampler=random"]}


def real_curve(folder: Path, metric: str, budget: int, sign: float) -> list[float | None]:
    """The best full-budget value after each ended trial of a finished sweep, in end order."""
    records = sorted(Ledger(folder / "trials.json").records.values(), key=lambda r: r.ended or 0.0)
    best, out = None, []
    for r in records:
        value = r.value(metric)
        if r.status == Status.COMPLETE and r.epochs >= budget and value is not None:
            best = value if best is None or sign * value < sign * best else best
        out.append(best)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds of the real sweeps")
    parser.add_argument("--reps", type=int, default=40, help="replays per strategy")
    parser.add_argument("--no-start-point", action="store_true", help="leave out the file's points_to_evaluate")
    parser.add_argument(
        "--lookup", choices=sorted(LOOKUPS), default="nearest", help="how a suggested config is answered"
    )
    args = parser.parse_args()
    table = load_table(args.table)
    sweep_file = Path(table.meta["source"])
    recorded = table.meta.get("overrides", [])
    lookup = LOOKUPS[args.lookup](recorded_spec(table).space, table)
    metric, budget, sign = table.meta["metric"], table.budget, table.sign
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, strategy in STRATEGIES.items():
            overrides = [*recorded, *strategy, *(["search.points_to_evaluate=[]"] if args.no_start_point else [])]
            parsed = parse_overrides(overrides, str(sweep_file))
            spec = load_sweep(sweep_file, overrides=parsed)
            n = spec.search.num_samples
            replays = [replay(spec, table, seed=rep, trials=n, lookup=lookup).ended for rep in range(args.reps)]
            worst = table.worst()
            filled = np.array([[worst if v is None else v for v in r[:n]] for r in replays])
            low, high = np.percentile(filled, [5, 95], axis=0)
            real = []
            dotted = {o.key: o.value for o in parsed}
            for seed in args.seeds:
                outcome = tuning.search(
                    None,
                    sweep_file,
                    storage=Path(tmp),
                    name=f"check_{len(results)}_{seed}",
                    echo=lambda line: None,
                    **{"search.seed": seed, **dotted},
                )
                curve = [worst if v is None else v for v in real_curve(outcome.folder, metric, budget, sign)][:n]
                inside = [bool(lo - 1e-12 <= v <= hi + 1e-12) for v, lo, hi in zip(curve, low, high, strict=False)]
                real.append({"seed": seed, "curve": curve, "inside": sum(inside), "of": len(inside)})
                print(f"{name:24s} seed {seed}: within the replays' 5-95% after {sum(inside)}/{len(inside)} trials")
            results[name] = {
                "replay_5": low.tolist(),
                "replay_median": np.median(filled, axis=0).tolist(),
                "replay_95": high.tolist(),
                "real": real,
                "agrees": all(r["inside"] == r["of"] for r in real),
            }
    summary = {"benchmark": "replay_check", "table": str(args.table), "reps": args.reps, "lookup": args.lookup}
    print(json.dumps({**summary, "start_point": not args.no_start_point, "strategies": results}))


if __name__ == "__main__":
    main()
