"""`fishleg-tune compare`: two optimizers tuned at equal budget, then judged on fresh seeds.

Both sweeps get the same workload, budget, training seed and number of trials; the top-k
configs of each are re-trained with fresh seeds at full budget; the verdict compares the
best of each by mean final validation metric, and by epochs and wall-clock time to a target;
the chosen config of each side is then evaluated on the test split, once."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from tuning.driver import Echo, SweepOutcome, run_sweep
from tuning.errors import UserError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger
from tuning.report import CSS, png_tag
from tuning.run.overrides import Override
from tuning.selection.holdout import evaluate_seed_runs
from tuning.selection.robust import SeedRuns, best_of, retrain_top
from tuning.sweep.spec import SweepSpec, load_sweep

__all__ = ["Comparison", "Side", "compare_sweeps", "time_to_target"]


@dataclass
class Side:
    """One optimizer's sweep and its top configs re-trained with fresh seeds."""

    label: str
    spec: SweepSpec
    outcome: SweepOutcome
    candidates: list[SeedRuns]

    def best(self, metric: str, mode: str) -> SeedRuns:
        """The candidate with the best mean final metric over its seeds."""
        return self.candidates[best_of(self.candidates, metric, mode)]


@dataclass
class Comparison:
    """Where the comparison's report is, its one-line verdict and its numbers."""

    folder: Path
    verdict: str
    summary: dict


def time_to_target(runs: SeedRuns, metric: str, mode: str, target: float) -> tuple[int | None, float | None]:
    """(epochs, seconds) until the seed-mean curve first reaches `target`; None if never."""
    curve = runs.mean_curve(metric)
    seconds = list(accumulate(runs.mean_curve("epoch_time_s")))
    for i, value in enumerate(curve):
        if (value <= target) if mode == "min" else (value >= target):
            return i + 1, seconds[i]
    return None, None


def _comparable(a: SweepSpec, b: SweepSpec, paths: tuple[Path, Path]) -> None:
    checks = {
        "workload": (a.workload, b.workload),
        "trainable": (a.trainable, b.trainable),
        "training": (a.training, b.training),
        "metric": (a.metric, b.metric),
    }
    for key, (x, y) in checks.items():
        if x != y:
            raise UserError(
                f"compare: {paths[0]} and {paths[1]} differ in `{key}:` ({x} vs {y}); "
                "a fair comparison needs the same workload (or trainable), training budget and seed, and metric."
            )


def _plot(sides: list[Side], metric: str, mode: str, folder: Path) -> dict[str, Path]:
    paths = {}
    for axis in ("epochs", "seconds"):
        fig = Figure(figsize=(7, 4.2))
        ax = fig.subplots()
        for side in sides:
            best = side.best(metric, mode)
            per_seed = [[row[metric] for row in c] for c in best.complete_curves()]
            if not per_seed:
                continue
            mean = best.mean_curve(metric)
            low = [min(v) for v in zip(*per_seed)]
            high = [max(v) for v in zip(*per_seed)]
            x = list(range(1, len(mean) + 1)) if axis == "epochs" else list(accumulate(best.mean_curve("epoch_time_s")))
            ax.plot(x, mean, marker=".", label=f"{side.label} (best config, {len(per_seed)} seeds)")
            ax.fill_between(x, low, high, alpha=0.25)
        ax.set_xlabel("epoch" if axis == "epochs" else "wall-clock seconds")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        paths[axis] = folder / f"curves_vs_{axis}.png"
        fig.savefig(paths[axis], dpi=110, bbox_inches="tight")
    return paths


def _fmt(x: float | None, spec: str, unit: str) -> str:
    return "never" if x is None else f"{format(x, spec)} {unit}"


def compare_sweeps(
    spec_a: Path,
    spec_b: Path,
    *,
    storage: str,
    num_samples: int | None,
    seeds: int,
    top_k: int,
    target: float | None,
    address: str | None,
    echo: Echo,
    overrides: Sequence[Override] = (),
) -> Comparison:
    """Tune both sweep files at equal budget, re-train each side's top-k with fresh seeds, judge
    on validation, test each side's choice once, and write comparison.html/.json. `overrides`
    (`KEY=VALUE` from the command line) apply to both files."""
    specs = [load_sweep(spec_a, overrides=overrides), load_sweep(spec_b, overrides=overrides)]
    _comparable(*specs, (spec_a, spec_b))
    n = num_samples if num_samples is not None else max(s.search.num_samples for s in specs)
    labels = [s.name or p.stem for s, p in zip(specs, (spec_a, spec_b))]
    if labels[0] == labels[1]:
        labels = [f"{labels[0]}-a", f"{labels[1]}-b"]
    folder = (Path(storage) / f"compare-{labels[0]}-vs-{labels[1]}").resolve()
    if (folder / "comparison.json").exists():
        raise UserError(f"{folder} already holds a comparison; choose another --storage-path.")
    sides = []
    for spec, path, label in zip(specs, (spec_a, spec_b), labels):
        echo(f"[bold]sweep {label}[/bold]: {n} trials")
        outcome = run_sweep(
            path, storage=str(folder), name=label, num_samples=n, address=address, echo=echo, overrides=overrides
        )
        if outcome.interrupted:
            raise UserError(f"compare: the {label} sweep did not finish; resume it with fishleg-tune resume.")
        records = list(Ledger(outcome.folder / SweepFolder.LEDGER).records.values())
        candidates = retrain_top(spec, records, top_k, seeds, echo, label)
        if not candidates:
            raise UserError(f"compare: no {label} trial ran the full budget; raise num_samples or grace_period.")
        sides.append(Side(label, spec, outcome, [runs for _, runs in candidates]))
    metric, mode = specs[0].metric.name, specs[0].metric.mode
    best = [s.best(metric, mode) for s in sides]
    tests: list[dict[str, Any]] = [{}, {}]  # a training function's test split is its own
    if specs[0].workload is not None:
        echo("evaluating each side's chosen config on the test split (once, over its seed re-runs)")
        tests = [
            evaluate_seed_runs(s.spec.base_config(), b, s.spec.resources.cpu, s.spec.resources.gpu)
            for s, b in zip(sides, best)
        ]
    test_metric = "test_" + metric.removeprefix("val_").removeprefix("train_")
    goal = best[1].mean(metric) if target is None else target
    reach = [time_to_target(b, metric, mode, goal) for b in best]
    winner = labels[0] if best[0].rank_key(metric, mode) < best[1].rank_key(metric, mode) else labels[1]
    verdict = (
        f"{labels[0]} vs {labels[1]} on {specs[0].subject}, {n} trials each, best config over {seeds} fresh "
        f"seeds: {metric} {best[0].mean(metric):.4g} ± {best[0].std(metric):.2g} vs "
        f"{best[1].mean(metric):.4g} ± {best[1].std(metric):.2g}; to reach {goal:.4g}: "
        f"{_fmt(reach[0][0], 'd', 'epochs')} vs {_fmt(reach[1][0], 'd', 'epochs')}, "
        f"{_fmt(reach[0][1], '.1f', 's')} vs {_fmt(reach[1][1], '.1f', 's')}. Better final {metric}: {winner}."
    )
    if all(test_metric in t for t in tests):
        verdict += (
            f" Test {test_metric.removeprefix('test_')} of the chosen configs (evaluated once): "
            f"{tests[0][test_metric]:.4g} ± {tests[0][test_metric + '_std']:.2g} vs "
            f"{tests[1][test_metric]:.4g} ± {tests[1][test_metric + '_std']:.2g}."
        )
    for label, b in zip(labels, best):
        if any(b.diverged):
            verdict += f" ({label}: {sum(b.diverged)} of {len(b.seeds)} seeds diverged.)"
    figures = _plot(sides, metric, mode, folder)
    summary = {
        "metric": metric,
        "mode": mode,
        "num_samples": n,
        "seeds": best[0].seeds,
        "target": goal,
        "verdict": verdict,
        "figures": {k: str(v) for k, v in figures.items()},
        "sides": {
            side.label: {
                "sweep": str(side.outcome.folder),
                "best": {
                    "params": b.params,
                    "mean": b.mean(metric),
                    "std": b.std(metric),
                    "finals": b.finals(metric),
                    "diverged_seeds": sum(b.diverged),
                    "epochs_to_target": r[0],
                    "seconds_to_target": r[1],
                    "test": t,
                },
                "candidates": [
                    {"params": c.params, "finals": c.finals(metric), "mean": c.mean(metric)} for c in side.candidates
                ],
            }
            for side, b, r, t in zip(sides, best, reach, tests)
        },
    }
    (folder / "comparison.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    body = f"<h1>{html.escape(labels[0])} vs {html.escape(labels[1])}</h1><p>{html.escape(verdict)}</p>"
    body += "".join(f"<h2>{metric} vs {axis}</h2>{png_tag(path)}" for axis, path in figures.items())
    body += f"<h2>Numbers</h2><pre>{html.escape(json.dumps(summary['sides'], indent=1, default=_json_default))}</pre>"
    (folder / "comparison.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>{body}</body></html>"
    )
    return Comparison(folder, verdict, summary)


def _json_default(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else str(value)
