"""How fast search strategies find a good config, replayed on a recorded learning-curve table
(`benchmarks/learning_curves.py` builds one; `tuning.replay.simulate` replays).

Each strategy is the table's sweep file with overrides (the same keys a user sets), replayed
`--reps` times with different search seeds on a simulated clock with the file's
`max_concurrent` workers. Compute is counted in full-trial units: worker-seconds divided by the
median seconds of one full-budget run in the table. For each strategy: the quality (the table's
seed-averaged final value) of the config the sweep would choose, as median and quartiles over
the repetitions at each compute; and `compute_to_target`, the compute until that choice comes
within the seed noise of the table's best config (median and quartiles; a repetition that never
gets there counts as beyond the horizon). Also the rank correlation (Spearman) of each epoch's
value with the final one over the table's runs: whether a scheduler's early rungs rank configs
as the budget does. Prints one line per strategy and, last, one JSON line.

    python benchmarks/search_efficiency.py benchmarks/tables/digits_graft.csv \\
        [--reps 20] [--horizon 48] [--no-start-point] [--extra-table benchmarks/tables/digits_graft_lr_damping.csv] \\
        [--warm-table benchmarks/tables/digits_adamw.csv] [--lookup nearest|surrogate] \\
        [--figure docs/search_efficiency_digits_graft.png]

With `--lookup surrogate` a suggested config trains a Gaussian process's curve fitted to the
table (`tuning.replay.lookup.Surrogate`) instead of the nearest recorded config's, and the
target is the process's best plus the seed noise; the JSON line then also holds the process's
cross-validated fidelity.

The sweep file is the one the table was recorded from, with the overrides it was recorded with.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from tuning.replay.lookup import LOOKUPS, Lookup, Surrogate
from tuning.replay.simulate import Trace, replay, warm_from
from tuning.replay.table import Table, load_table, merge, recorded_spec
from tuning.sweep.spec import SweepSpec

TUNED = ("optimizer.lr", "optimizer.damping")  # what `pinned` leaves to the search


def pinned(spec: SweepSpec) -> list[str]:
    """Every space key but TUNED held at the file's first start point (its known-good recipe)."""
    if not spec.search.points_to_evaluate:
        raise SystemExit(f"{spec.name}: 'pinned' needs a start point to hold the other keys at")
    out = []
    for key, value in spec.search.points_to_evaluate[0].items():
        p = spec.space[key]
        if key in TUNED:
            continue
        if p.type == "categorical":
            out.append(f"space.{key}.choices=[{value}]")
        else:
            out += [f"space.{key}.low={value}", f"space.{key}.high={value}"]
    return out


STRATEGIES: dict[str, Callable[[SweepSpec], list[str]]] = {
    "default (TPE + ASHA)": lambda spec: [],
    "random + ASHA": lambda spec: ["search.sampler=random"],
    "TPE, no pruning": lambda spec: ["scheduler.type=none"],
    "GP, no pruning": lambda spec: ["search.sampler=gp", "scheduler.type=none"],
    "CMA-ES + ASHA": lambda spec: ["search.sampler=cmaes"],
    "TPE + ASHA grace 1": lambda spec: ["scheduler.grace_period=1"],
    "TPE + ASHA grace 4": lambda spec: ["scheduler.grace_period=4"],
    "TPE + ASHA rf 3": lambda spec: ["scheduler.reduction_factor=3"],
    "TPE + ASHA, lr and damping only": pinned,
}


def rank_correlation(table: Table) -> list[float]:
    """Spearman's ρ of each epoch's value with the final one, over the runs that finished."""
    runs = [c for i in table.curves for c in table.full(i)]
    finals = [c.final for c in runs]
    return [round(float(spearmanr([c.values[e] for c in runs], finals).statistic), 3) for e in range(table.budget)]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Without interpolation, so a quartile among repetitions that never reached is inf, not nan."""
    q1, q2, q3 = np.percentile(values, [25, 50, 75], method="inverted_cdf")
    return float(q1), float(q2), float(q3)


def finite(value: float) -> float | None:
    """JSON has no infinity: None stands for "not within the horizon"."""
    return value if math.isfinite(value) else None


def summarise(traces: list[Trace], table: Table, target: float, unit: float, horizon: float) -> dict[str, Any]:
    """The quality curve (quartiles over repetitions) and the compute to the target, in full-trial units."""
    sign = table.sign
    to_target = [t.time_to(target, sign) for t in traces]
    units = [math.inf if s is None else s / unit for s in to_target]
    grid = np.linspace(0, horizon, 25)[1:]
    worst = table.worst()
    curve = []
    for x in grid:
        found = [t.quality_at(x * unit) for t in traces]
        spread = quartiles([worst if f is None else f for f in found])
        curve.append([round(float(x), 2), *(round(q, 5) for q in spread)])
    q1, med, q3 = quartiles(units)
    return {
        "compute_to_target": {
            "q1": finite(q1),
            "median": finite(med),
            "q3": finite(q3),
            "reached": sum(math.isfinite(u) for u in units),
            "each": [finite(u) for u in units],
        },
        "trials": statistics.median(t.trials for t in traces),
        "curve": curve,
    }


def strategy_spec(table: Table, strategy: Callable[[SweepSpec], list[str]], no_start_point: bool) -> SweepSpec:
    """The sweep file as the table recorded it, with the strategy's overrides (and without its
    start point, if asked)."""
    extra = ["search.points_to_evaluate=[]"] if no_start_point else []
    return recorded_spec(table, [*strategy(recorded_spec(table)), *extra])


def recorded_lookup(kind: str, table: Table) -> Lookup:
    """The table's lookup over the space it was recorded in (a strategy's narrower space would
    drop the keys it pins from the distance)."""
    return LOOKUPS[kind](recorded_spec(table).space, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", type=Path)
    parser.add_argument("--reps", type=int, default=20, help="repetitions (search seeds) per strategy")
    parser.add_argument("--horizon", type=float, default=48.0, help="compute replayed, in full-trial units")
    parser.add_argument("--no-start-point", action="store_true", help="leave out the file's points_to_evaluate")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument(
        "--extra-table",
        type=Path,
        action="append",
        default=[],
        help="a table of a sub-space of the same file (as 'lr and damping only' searches), merged into the first",
    )
    parser.add_argument("--warm-table", type=Path, help="a table of another optimizer's sweep file to warm-start from")
    parser.add_argument(
        "--lookup", choices=sorted(LOOKUPS), default="nearest", help="how a suggested config is answered"
    )
    parser.add_argument("--figure", type=Path, help="write the quality-against-compute figure here (matplotlib)")
    args = parser.parse_args()
    table = merge([load_table(args.table), *map(load_table, args.extra_table)])
    lookup = recorded_lookup(args.lookup, table)
    best_config, best = table.best()
    if args.lookup != "nearest":
        best_config, best = None, lookup.best()
    noise = table.seed_noise()
    target = best + table.sign * noise
    unit = statistics.median(sum(c.seconds) for i in table.curves for c in table.full(i))
    base = strategy_spec(table, STRATEGIES["default (TPE + ASHA)"], args.no_start_point)
    wall = args.horizon * unit / base.search.max_concurrent
    results: dict[str, dict[str, Any]] = {}
    plans = {name: (strategy_spec(table, STRATEGIES[name], args.no_start_point), None) for name in args.strategies}
    if args.warm_table is not None:
        warm_table = load_table(args.warm_table)
        warm_spec = recorded_spec(warm_table)
        warm_lookup = recorded_lookup(args.lookup, warm_table)
        plans[f"default, warm from {warm_spec.name}"] = (base, (warm_table, warm_spec, warm_lookup))
    for name, (spec, warm_source) in plans.items():
        traces = []
        for rep in range(args.reps):
            warm = None
            if warm_source is not None:  # a finished sweep of the other file, replayed on its own table
                w_table, w_spec, w_lookup = warm_source
                earlier = replay(w_spec, w_table, seed=1000 + rep, trials=w_spec.search.num_samples, lookup=w_lookup)
                warm = warm_from(earlier, spec, w_spec.name)
            traces.append(replay(spec, table, seed=rep, seconds=wall, warm=warm, lookup=lookup))
        results[name] = summarise(traces, table, target, unit / base.search.max_concurrent, args.horizon)
        got = results[name]["compute_to_target"]
        c = {k: "never" if got[k] is None else f"{got[k]:.1f}" for k in ("q1", "median", "q3")}
        print(
            f"{name:34s} compute to target: median {c['median']} (quartiles {c['q1']}-{c['q3']}), "
            f"reached {got['reached']}/{args.reps}",
            flush=True,
        )
    summary = {
        "benchmark": "search_efficiency",
        "table": str(args.table),
        "extra_tables": [str(t) for t in args.extra_table],
        "configs": len(table.curves),
        "reps": args.reps,
        "start_point": not args.no_start_point,
        "lookup": args.lookup,
        "fidelity": lookup.fidelity() if isinstance(lookup, Surrogate) else None,
        "best": best,
        "best_config": best_config,
        "seed_noise": noise,
        "target": target,
        "unit_s": unit,
        "horizon": args.horizon,
        "rank_correlation": rank_correlation(table),
        "strategies": results,
    }
    if args.figure is not None:
        figure(summary, args.figure)
    print(json.dumps(summary))


def figure(summary: dict[str, Any], path: Path) -> None:
    """Left: the chosen config's quality (median over replays) against compute; right: the share
    of replays within the seed noise of the table's best by each compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    horizon = summary["horizon"]
    for name, result in summary["strategies"].items():
        x, _, med, _ = np.array(result["curve"]).T
        (line,) = left.plot(x, med, label=name)
        reached = sorted(u for u in result["compute_to_target"]["each"] if u is not None)
        share = [sum(u <= c for u in reached) / summary["reps"] for c in x]
        right.step(x, share, where="post", color=line.get_color(), label=name)
    left.axhline(summary["target"], color="k", linestyle=":", label="table best + seed noise")
    spread = summary["target"] - summary["best"]
    left.set_ylim(summary["best"] - spread, summary["target"] + 4 * spread)
    left.set_xlabel("compute (full-budget trials of worker time)")
    left.set_ylabel("chosen config's seed-mean final value (median)")
    right.set_xlabel("compute (full-budget trials of worker time)")
    right.set_ylabel(f"share of {summary['reps']} replays within the seed noise")
    right.set_xlim(0, horizon)
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{Path(summary['table']).stem}: {summary['reps']} replays per strategy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
