"""`fishleg-tune compare`: any number of optimizers tuned at equal budget, then judged on fresh seeds.

Every sweep gets the same workload, budget, training seed and number of trials; the top-k
configs of each are re-trained with fresh seeds at full budget; the verdict ranks the best of
each by mean final validation metric, and says how many epochs and seconds each needs to reach
every other's final value; the chosen config of each is then evaluated on the test split, once."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from tuning.driver import Echo, SweepOutcome, SweepPlan, place_sweep, read_sweep_file, resume_sweep, start_sweep
from tuning.errors import UserError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, format_counts
from tuning.report.figures import Band, bands
from tuning.report.page import Cell, Page, fmt
from tuning.run.overrides import Override
from tuning.selection.holdout import evaluate_seed_runs
from tuning.selection.robust import SeedRuns, best_of, retrain_top
from tuning.sweep.spec import SweepSpec

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
    """Where the comparison's report is, its verdict and its numbers."""

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


def _comparable(specs: Sequence[SweepSpec], paths: Sequence[Path]) -> None:
    for spec, path in zip(specs[1:], paths[1:]):
        checks = {
            "workload": (specs[0].workload, spec.workload),
            "trainable": (specs[0].trainable, spec.trainable),
            "training": (specs[0].training, spec.training),
            "metric": (specs[0].metric, spec.metric),
        }
        for key, (x, y) in checks.items():
            if x != y:
                raise UserError(
                    f"compare: {paths[0]} and {path} differ in `{key}:` ({x} vs {y}); a fair comparison needs "
                    "the same workload (or trainable), training budget and seed, and metric."
                )


def _ran_here_before(plan: SweepPlan) -> bool:
    """Whether the plan's folder holds this very sweep (the same file, overrides and trials) from
    an earlier run of the same compare, stopped after it: it is then resumed, or only read back
    if it finished, so a compare cut short keeps the sweeps it had run."""
    if not plan.folder.is_sweep():
        return False
    meta = plan.folder.meta()
    return all(meta.get(key) == value for key, value in plan.source().items())


def _labels(specs: Sequence[SweepSpec], paths: Sequence[Path]) -> list[str]:
    """Each sweep's name (or file stem), made unique with -a, -b, ... where two are the same."""
    names = [s.name or p.stem for s, p in zip(specs, paths)]
    return [f"{n}-{chr(ord('a') + i)}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _bands(sides: Sequence[Side], best: Sequence[SeedRuns], metric: str, axis: str) -> list[Band]:
    """Each side's best config: the seed-mean curve against epochs or seconds, with the band
    between the lowest and highest seed."""
    out = []
    for side, runs in zip(sides, best):
        per_seed = [[row[metric] for row in c] for c in runs.complete_curves()]
        if not per_seed:
            continue
        mean = runs.mean_curve(metric)
        x = list(range(1, len(mean) + 1)) if axis == "epochs" else list(accumulate(runs.mean_curve("epoch_time_s")))
        low, high = [min(v) for v in zip(*per_seed)], [max(v) for v in zip(*per_seed)]
        out.append(Band(f"{side.label} ({len(per_seed)} seeds)", x, mean, low, high))
    return out


def _test_metric(metric: str) -> str:
    """The test split's counterpart of a validation metric: val_loss → test_loss."""
    return "test_" + metric.removeprefix("val_").removeprefix("train_")


def _reach(best: Sequence[SeedRuns], labels: Sequence[str], metric: str, mode: str) -> list[dict[str, Any]]:
    """For each side, the epochs and seconds its best config needs to reach each other side's final mean."""
    return [
        {
            other: dict(zip(("epochs", "seconds"), time_to_target(runs, metric, mode, rival.mean(metric))))
            for other, rival in zip(labels, best)
            if rival is not runs and not math.isnan(rival.mean(metric))
        }
        for runs in best
    ]


def _verdict(labels: list[str], best: list[SeedRuns], reach: list[dict], tests: list[dict], ctx: dict) -> str:
    metric, mode = ctx["metric"], ctx["mode"]
    order = sorted(range(len(best)), key=lambda i: best[i].rank_key(metric, mode))
    ranked = "; ".join(f"{labels[i]} {best[i].mean(metric):.4g} ± {best[i].std(metric):.2g}" for i in order)
    first = order[0]
    verdict = (
        f"{' vs '.join(labels)} on {ctx['subject']}, {ctx['trials']} trials each, best config over {ctx['seeds']} "
        f"fresh seeds, best first: {metric} {ranked}. Better final {metric}: {labels[first]}"
    )
    seconds = {label: sum(b.mean_curve("epoch_time_s")) for label, b in zip(labels, best)}
    gains = [
        f"{other}'s final at epoch {r['epochs']} ({r['seconds']:.1f} s; {other} took {seconds[other]:.1f} s)"
        for other, r in reach[first].items()
        if r["epochs"] is not None
    ]
    verdict += f", which reaches {', '.join(gains)}." if gains else "."
    test_metric = _test_metric(metric)
    if all(test_metric in t for t in tests):
        verdict += (
            f" Test {test_metric.removeprefix('test_')} of the chosen configs (evaluated once): "
            + "; ".join(
                f"{labels[i]} {tests[i][test_metric]:.4g} ± {tests[i][test_metric + '_std']:.2g}" for i in order
            )
            + "."
        )
    for label, b in zip(labels, best):
        if any(b.diverged):
            verdict += f" ({label}: {sum(b.diverged)} of {len(b.seeds)} seeds diverged.)"
    return verdict


def _reached(r: dict[str, Any]) -> str:
    return "never" if r["epochs"] is None else f"{r['epochs']} ep, {r['seconds']:.1f} s"


def _page(labels: list[str], sides: list[Side], best: list[SeedRuns], summary: dict) -> str:
    """comparison.html: the verdict, the curves against epochs and seconds (seed bands), the table."""
    metric = summary["metric"]
    page = Page(f"compare {' vs '.join(labels)}")
    page.heading(" vs ".join(labels), 1)
    page.text(summary["verdict"])
    for axis, title in (("epochs", "epoch"), ("seconds", "wall-clock seconds (seed mean)")):
        page.heading(f"{metric} against {axis}")
        page.figure(f"vs_{axis}", bands(_bands(sides, best, metric, axis), title, metric))
    page.heading("Best config of each sweep")
    test_metric = _test_metric(metric)
    rows = []
    for label in labels:
        b = summary["sides"][label]["best"]
        test = b["test"].get(test_metric)
        reach = ", ".join(f"{other}: {_reached(r)}" for other, r in b["reach"].items())
        cells = [
            Cell(label),
            Cell(f"{fmt(b['mean'])} ± {b['std']:.2g}", b["mean"]),
            Cell("" if test is None else f"{fmt(test)} ± {b['test'][test_metric + '_std']:.2g}", test),
            Cell(f"{b['seconds']:.1f}", b["seconds"]),
            Cell(reach),
            Cell(" ".join(f"{k.removeprefix('optimizer.')}={fmt(v)}" for k, v in b["params"].items())),
        ]
        rows.append(("", cells))
    columns = [
        "sweep",
        f"{metric} (mean ± std over seeds)",
        f"{test_metric} (once)",
        "seconds",
        "to reach each other's final value",
        "config",
    ]
    page.table("sides", columns, rows)
    return page.render()


def compare_sweeps(
    spec_files: Sequence[Path],
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
    """Tune every sweep file at equal budget, re-train each one's top-k with fresh seeds, judge
    on validation, test each one's choice once, and write comparison.html/.json. `overrides`
    (`KEY=VALUE` from the command line) apply to every file; `target` adds epochs and seconds
    to that value."""
    if len(spec_files) < 2:
        raise UserError(f"compare needs at least two sweep files; got {len(spec_files)}.")
    files = [read_sweep_file(path, num_samples=num_samples, overrides=overrides) for path in spec_files]
    specs = [f.spec for f in files]
    _comparable(specs, spec_files)
    n = max(s.search.num_samples for s in specs)  # --num-samples, when given, set every file's
    labels = _labels(specs, spec_files)
    folder = (Path(storage) / f"compare-{'-vs-'.join(labels)}").resolve()
    if (folder / "comparison.json").exists():
        raise UserError(f"{folder} already holds a comparison; choose another --storage-path.")
    plans = [place_sweep(f.with_num_samples(n), storage=folder, name=label) for f, label in zip(files, labels)]
    sides, left_out = [], {}
    for plan, label in zip(plans, labels):
        echo(f"sweep {label}: {n} trials")
        earlier = _ran_here_before(plan)
        outcome = (
            resume_sweep(plan.folder.path, address=address, echo=echo)
            if earlier
            else start_sweep(plan, address=address, echo=echo)
        )
        if outcome.interrupted:
            raise UserError(
                f"compare: the {label} sweep did not finish; run the same compare again to resume it "
                "(finished sweeps are reused)."
            )
        records = list(Ledger(outcome.folder / SweepFolder.LEDGER).records.values())
        candidates = retrain_top(plan.spec, records, top_k, seeds, echo, label)
        if not candidates:
            left_out[label] = f"no trial ran the full {plan.spec.budget} epochs ({format_counts(outcome.counts)})"
            echo(f"{label}: {left_out[label]}; left out of the comparison")
            continue
        sides.append(Side(label, plan.spec, outcome, [runs for _, runs in candidates]))
    if len(sides) < 2:
        raise UserError(
            f"compare: fewer than two sweeps had a trial that ran the full budget ({'; '.join(left_out.values())}); "
            "raise num_samples or grace_period, or widen the spaces."
        )
    labels = [side.label for side in sides]
    metric, mode = specs[0].metric.name, specs[0].metric.mode
    best = [s.best(metric, mode) for s in sides]
    tests: list[dict[str, Any]] = [{} for _ in sides]  # a training function's test split is its own
    if specs[0].workload is not None:
        echo("evaluating each sweep's chosen config on the test split (once, over its seed re-runs)")
        tests = [
            evaluate_seed_runs(s.spec.base_config(), b, s.spec.resources.cpu, s.spec.resources.gpu)
            for s, b in zip(sides, best)
        ]
    reach = _reach(best, labels, metric, mode)
    context = {"metric": metric, "mode": mode, "subject": specs[0].subject, "trials": n, "seeds": seeds}
    verdict = _verdict(labels, best, reach, tests, context)
    verdict += "".join(f" ({label}: {why}, so it is not compared.)" for label, why in left_out.items())
    summary = {
        "metric": metric,
        "mode": mode,
        "num_samples": n,
        "seeds": best[0].seeds,
        "target": target,
        "verdict": verdict,
        "left_out": left_out,
        "sides": {
            side.label: {
                "sweep": str(side.outcome.folder),
                "best": {
                    "params": b.params,
                    "mean": b.mean(metric),
                    "std": b.std(metric),
                    "finals": b.finals(metric),
                    "diverged_seeds": sum(b.diverged),
                    "seconds": sum(b.mean_curve("epoch_time_s")),
                    "epochs": len(b.mean_curve(metric)),
                    "reach": r,
                    "to_target": None
                    if target is None
                    else dict(zip(("epochs", "seconds"), time_to_target(b, metric, mode, target))),
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
    (folder / "comparison.html").write_text(_page(labels, sides, best, summary))
    return Comparison(folder, verdict, summary)


def _json_default(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else str(value)
