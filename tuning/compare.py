"""`fishleg-tune compare`: any number of optimizers tuned at equal budget, then judged on fresh seeds.

Every sweep gets the same workload, budget, training seed and number of trials; the top-k
configs of each are re-trained with fresh seeds at full budget; the verdict ranks the best of
each by mean final validation metric, and says how many epochs and seconds each needs to reach
every other's final value; the chosen config of each is then evaluated on the test split, once."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

from tuning.driver import Echo, SweepPlan, place_sweep, read_sweep_file, resume_sweep, start_sweep
from tuning.errors import UserCodeError, UserError
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord, format_counts
from tuning.records.status import TERMINAL
from tuning.report.comparison import comparison_page, held_out_metric
from tuning.run.overrides import Override
from tuning.selection.ablation import Ablation, ablate, ablations
from tuning.selection.holdout import evaluate_seed_runs
from tuning.selection.intervals import BETTER, CONFIDENCE, Difference, difference
from tuning.selection.robust import SeedRuns, best_of, retrain_top
from tuning.selection.seed_store import SeedStore
from tuning.selection.sequential import SeedRounds, separate
from tuning.summary import time_to
from tuning.sweep.callbacks import is_protocol_error, sweep_failure
from tuning.sweep.spec import MAX_SEEDS, SweepSpec

__all__ = ["Comparison", "Judgement", "Side", "compare_sweeps", "judge", "time_to_target"]

MAX_TOP_K = 20  # configs of each sweep re-trained on fresh seeds


@dataclass
class Side:
    """One optimizer's sweep (its folder) and its top configs re-trained with fresh seeds."""

    label: str
    spec: SweepSpec
    folder: Path
    candidates: list[SeedRuns]

    def best(self, metric: str, mode: str) -> SeedRuns:
        """The candidate with the best mean final metric over its seeds."""
        return self.candidates[best_of(self.candidates, metric, mode)]


@dataclass
class Judgement:
    """The verdict, comparison.json's numbers, each side's title ("name (optimizer)") and the
    leader's difference from each side (by split; {} for the leader)."""

    verdict: str
    summary: dict[str, Any]
    titles: list[str]
    versus: list[dict[str, Difference]]


@dataclass
class Comparison:
    """Where the comparison's report is, its verdict and its numbers."""

    folder: Path
    verdict: str
    summary: dict


def time_to_target(runs: SeedRuns, metric: str, mode: str, target: float) -> tuple[int | None, float | None]:
    """(epochs, seconds) until the seed-mean curve first reaches `target`; None if never."""
    return time_to(runs.mean_curve(metric), list(accumulate(runs.mean_curve("epoch_time_s"))), target, mode)


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


def _check_counts(counts: dict[str, int]) -> None:
    """--seeds (or --max-seeds) and --top-k within what a comparison can run: each config is
    re-trained with each seed at full budget."""
    for option, value in counts.items():
        most = MAX_TOP_K if option == "--top-k" else MAX_SEEDS
        if value > most:
            raise UserError(
                f"compare: {option} {value} is more than {most}; each of --top-k configs is re-trained with each "
                f"fresh seed at full budget. Give at most {most}."
            )


def _holds(folder: SweepFolder, plan: SweepPlan) -> bool:
    """Whether `folder` holds this very sweep: the same file (by its hash) and overrides, so the
    same space, budget and number of trials."""
    if not folder.is_sweep():
        return False
    meta = folder.meta()
    return all(meta.get(key) == value for key, value in plan.source().items())


def _finished(folder: SweepFolder, spec: SweepSpec) -> list[TrialRecord] | None:
    """The trials of a sweep that ran to its end (every trial of its budget ended), else None."""
    if not folder.ledger_file.exists():
        return None
    records = list(Ledger(folder.ledger_file).records.values())
    done = len(records) >= spec.search.num_samples and all(r.status in TERMINAL for r in records)
    return records if done else None


def _sweep(
    plan: SweepPlan, searched: SweepFolder, label: str, address: str | None, echo: Echo
) -> tuple[Path, list[TrialRecord]]:
    """The sweep's folder and trials. A finished sweep of the same file and overrides is read
    back, never run again: one an earlier run of this compare made, or one `fishleg-tune search`
    made in the same storage folder. One this compare left unfinished is resumed; else it runs."""
    for folder in (plan.folder, searched):
        records = _finished(folder, plan.file.spec) if _holds(folder, plan) else None
        if records is not None:
            echo(f"sweep {label}: the finished sweep in {folder.path} is reused, not run again")
            _check_failure(label, sweep_failure(records, folder), folder.path)
            return folder.path, records
    if _holds(plan.folder, plan):
        outcome = resume_sweep(plan.folder.path, address=address, echo=echo)
    else:
        outcome = start_sweep(plan, address=address, echo=echo)
    _check_failure(label, outcome.failure, outcome.folder)
    if outcome.interrupted:
        raise KeyboardInterrupt  # the CLI: exit 130, and the same compare continues it
    return outcome.folder, list(Ledger(outcome.folder / SweepFolder.LEDGER).records.values())


def _check_failure(label: str, failure: str | None, folder: Path) -> None:
    """A sweep whose trials all failed with one error ends the compare with that error: the
    user's code (exit 1) or a broken protocol (bad input, exit 2), as `search` says it."""
    if failure is None:
        return
    message = (
        f"compare: every trial of the {label} sweep failed with the same error, so the comparison stopped: "
        f"{failure} (tracebacks: {folder / SweepFolder.ERRORS})"
    )
    raise UserError(message) if is_protocol_error(failure) else UserCodeError(message)


def _labels(specs: Sequence[SweepSpec], paths: Sequence[Path]) -> list[str]:
    """Each sweep's name (or file stem), made unique with -a, -b, ... where two are the same."""
    names = [s.name or p.stem for s, p in zip(specs, paths)]
    return [f"{n}-{chr(ord('a') + i)}" if names.count(n) > 1 else n for i, n in enumerate(names)]


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


def _against_leader(
    best: Sequence[SeedRuns], tests: Sequence[dict[str, Any]], leader: int, metric: str, mode: str, confidence: float
) -> list[dict[str, Difference]]:
    """For each side, the leader's difference from it with its interval, on validation (the
    seeds' final values) and, where evaluated, on test; {} for the leader itself."""
    finals_key = held_out_metric(metric) + "_finals"
    out: list[dict[str, Difference]] = []
    for i, runs in enumerate(best):
        if i == leader:
            out.append({})
            continue
        pair = {"validation": difference(best[leader].finals(metric), runs.finals(metric), mode, confidence)}
        if finals_key in tests[leader] and finals_key in tests[i]:
            pair["test"] = difference(tests[leader][finals_key], tests[i][finals_key], mode, confidence)
        out.append(pair)
    return out


def _standing(
    titles: Sequence[str], versus: Sequence[dict[str, Difference]], leader: int, split: str, interval: str
) -> str:
    """What the leader's intervals on `split` allow one to say: better than every other side
    (each interval excludes zero), or level with those whose interval holds it."""
    level = [titles[i] for i, pair in enumerate(versus) if i != leader and pair[split].verdict != BETTER]
    if not level:
        noise = f"beyond the seeds' noise (each {interval} interval excludes 0)"
        return f"{titles[leader]}, better than every other {noise}"
    rest = [titles[i] for i, pair in enumerate(versus) if i != leader and pair[split].verdict == BETTER]
    better = f"; better than {', '.join(rest)}" if rest else ""
    return (
        f"none beyond the seeds' noise: {titles[leader]} is first by the mean, level with {', '.join(level)} "
        f"(the {interval} interval of the difference holds 0){better}"
    )


def _verdict(
    titles: list[str],
    best: list[SeedRuns],
    reach: list[dict],
    tests: list[dict],
    versus: list[dict[str, Difference]],
    ctx: dict,
) -> str:
    metric, mode = ctx["metric"], ctx["mode"]
    order = sorted(range(len(best)), key=lambda i: best[i].rank_key(metric, mode))
    ranked = "; ".join(f"{titles[i]} {best[i].mean(metric):.4g} ± {best[i].std(metric):.2g}" for i in order)
    first = order[0]
    differences = "; ".join(f"{titles[i]} {versus[i]['validation'].describe()}" for i in order[1:])
    verdict = (
        f"{' vs '.join(titles)} on {ctx['subject']}, {ctx['trials']} trials each, best config over {ctx['seeds']} "
        f"fresh seeds, best first: {metric} {ranked}. {titles[first]}'s difference from each ({ctx['confidence']} "
        "interval): "
        f"{differences}. Better final {metric}: {_standing(titles, versus, first, 'validation', ctx['confidence'])}"
    )
    title_of = dict(zip(ctx["labels"], titles))
    seconds = {label: sum(b.mean_curve("epoch_time_s")) for label, b in zip(ctx["labels"], best)}
    gains = [
        f"{title_of[other]}'s final at epoch {r['epochs']} ({r['seconds']:.1f} s; it took {seconds[other]:.1f} s)"
        for other, r in reach[first].items()
        if r["epochs"] is not None
    ]
    verdict += f". {titles[first]} reaches {', '.join(gains)}." if gains else "."
    test_name = held_out_metric(metric)
    if all(test_name in t for t in tests):
        verdict += f" Test {test_name.removeprefix('test_')} of the chosen configs (evaluated once): " + "; ".join(
            f"{titles[i]} {tests[i][test_name]:.4g} ± {tests[i][test_name + '_std']:.2g}" for i in order
        )
        if all("test" in versus[i] for i in order[1:]):
            verdict += f"; better on test: {_standing(titles, versus, first, 'test', ctx['confidence'])}"
        verdict += "."
    for title, b in zip(titles, best):
        if any(b.diverged):
            verdict += f" ({title}: {sum(b.diverged)} of {len(b.seeds)} seeds diverged.)"
    return verdict


def judge(
    sides: Sequence[Side],
    best: Sequence[SeedRuns],
    tests: Sequence[dict[str, Any]],
    ablated: Sequence[Sequence[Ablation]],
    *,
    num_samples: int,
    target: float | None,
    rounds: SeedRounds | None,
    left_out: dict[str, str],
) -> Judgement:
    """The verdict and comparison.json's numbers, from each side's chosen seed runs (`best`),
    their test results (`tests`, {} where not evaluated) and Q-only variants (`ablated`): no
    training here. `rounds`: the sequential rule that grew the seeds, if any (its confidence);
    `left_out`: the sweeps not compared, and why."""
    spec = sides[0].spec
    metric, mode, n = spec.metric.name, spec.metric.mode, num_samples
    labels = [side.label for side in sides]
    confidence = CONFIDENCE if rounds is None else rounds.confidence
    titles = [f"{side.label} ({side.spec.optimizer.name})" for side in sides]
    reach = _reach(best, labels, metric, mode)
    leader = min(range(len(best)), key=lambda i: best[i].rank_key(metric, mode))
    versus = _against_leader(best, tests, leader, metric, mode, confidence)
    counts = sorted({len(b.seeds) for b in best})
    context = {"metric": metric, "mode": mode, "subject": spec.subject, "trials": n, "labels": labels}
    context["seeds"] = " to ".join(map(str, counts[:: max(1, len(counts) - 1)]))
    context["confidence"] = f"{100 * confidence:.4g}%"
    verdict = _verdict(titles, best, reach, tests, versus, context)
    for title, variants in zip(titles, ablated):
        if variants:
            verdict += (
                f" What the learnt Q adds to {title}, its chosen config re-trained on the same seeds with only Q "
                f"changed ({title} − it, 95% interval): "
                + "; ".join(f"{a.name} {a.learnt_q.describe()}" for a in variants)
                + "."
            )
    verdict += "".join(f" ({label}: {why}, so it is not compared.)" for label, why in left_out.items())
    if rounds is not None:
        got = ", ".join(f"{title} {len(b.seeds)}" for title, b in zip(titles, best))
        verdict += f" Seeds: {rounds.describe()}; each side got: {got}."
    summary = {
        "subject": spec.subject,
        "metric": metric,
        "mode": mode,
        "num_samples": n,
        "seeds": best[0].seeds,
        "confidence": confidence,
        "sequential": None if rounds is None else {"rule": rounds.describe(), "looks": rounds.looks},
        "target": target,
        "verdict": verdict,
        "left_out": left_out,
        "leader": labels[leader],
        "pairs": [
            {"side": labels[leader], "against": labels[i], "split": split, **d.to_dict()}
            for i, pair in enumerate(versus)
            for split, d in pair.items()
        ],
        "sides": {
            side.label: {
                "title": title,
                "optimizer": side.spec.optimizer.name,
                "sweep": str(side.folder),
                "best": {
                    "params": b.params,
                    "mean": b.mean(metric),
                    "std": b.std(metric),
                    "finals": b.finals(metric),
                    "diverged_seeds": sum(b.diverged),
                    "seconds": sum(b.mean_curve("epoch_time_s")),
                    "epochs": len(b.mean_curve(metric)),
                    "curve": b.mean_curve(metric),
                    "elapsed": list(accumulate(b.mean_curve("epoch_time_s"))),
                    "reach": r,
                    "to_target": None
                    if target is None
                    else dict(zip(("epochs", "seconds"), time_to_target(b, metric, mode, target))),
                    "test": t,
                },
                "candidates": [
                    {"params": c.params, "finals": c.finals(metric), "mean": c.mean(metric)} for c in side.candidates
                ],
                "ablations": [a.to_dict(metric) for a in variants],
            }
            for side, title, b, r, t, variants in zip(sides, titles, best, reach, tests, ablated)
        },
    }
    return Judgement(verdict, summary, titles, versus)


def compare_sweeps(
    spec_files: Sequence[Path],
    *,
    storage: str,
    num_samples: int | None,
    seeds: int | Literal["auto"],
    top_k: int,
    target: float | None,
    address: str | None,
    echo: Echo,
    overrides: Sequence[Override] = (),
    max_seeds: int = SeedRounds.most,
) -> Comparison:
    """Tune every sweep file at equal budget, re-train each one's top-k with fresh seeds, judge
    on validation, test each one's choice once, and write comparison.html/.json. `overrides`
    (`KEY=VALUE` from the command line) apply to every file; `target` adds epochs and seconds
    to that value. `seeds` "auto": seeds added to the leader and the runner-up until they are
    separated or have `max_seeds` each (`tuning.selection.sequential`)."""
    if len(spec_files) < 2:
        raise UserError(f"compare needs at least two sweep files; got {len(spec_files)}.")
    rounds = SeedRounds(most=max_seeds) if seeds == "auto" else None
    seeds = rounds.start if rounds is not None else seeds
    _check_counts({"--top-k": top_k, **({"--max-seeds": max_seeds} if rounds else {"--seeds": seeds})})
    twice = sorted({str(p) for p in spec_files if [q.resolve() for q in spec_files].count(p.resolve()) > 1})
    if twice:
        raise UserError(
            f"compare: {', '.join(twice)} is given more than once; a sweep compared with itself says nothing. "
            "Give each sweep file once (a copy under another name compares the seeds' noise with itself)."
        )
    files = [read_sweep_file(path, num_samples=num_samples, overrides=overrides) for path in spec_files]
    specs = [f.spec for f in files]
    _comparable(specs, spec_files)
    n = max(s.search.num_samples for s in specs)  # --num-samples, when given, set every file's
    labels = _labels(specs, spec_files)
    folder = (Path(storage) / f"compare-{'-vs-'.join(labels)}").resolve()
    if (folder / "comparison.json").exists():
        raise UserError(f"{folder} already holds a comparison; choose another --storage-path.")
    plans = [place_sweep(f.with_num_samples(n), storage=folder, name=label) for f, label in zip(files, labels)]
    searched = [SweepFolder.locate(str(storage), f.spec.name or f.path.stem) for f in files]
    store = SeedStore.under(folder)  # a compare cut short and run again trains no seed twice
    sides, left_out = [], {}
    for plan, label, elsewhere in zip(plans, labels, searched):
        echo(f"sweep {label}: {n} trials")
        swept, records = _sweep(plan, elsewhere, label, address, echo)
        candidates = retrain_top(plan.file.spec, records, top_k, seeds, echo, store, label)
        if not candidates:
            counts = format_counts(dict(Counter(r.status for r in records)))
            left_out[label] = f"no trial ran the full {plan.file.spec.budget} epochs ({counts})"
            echo(f"{label}: {left_out[label]}; left out of the comparison")
            continue
        sides.append(Side(label, plan.file.spec, swept, [runs for _, runs in candidates]))
    if len(sides) < 2:
        raise UserError(
            f"compare: fewer than two sweeps had a trial that ran the full budget ({'; '.join(left_out.values())}); "
            "raise num_samples or grace_period, or widen the spaces."
        )
    labels = [side.label for side in sides]
    metric, mode = specs[0].metric.name, specs[0].metric.mode
    best = [s.best(metric, mode) for s in sides]  # each side's choice, on the same number of seeds
    if rounds is not None:
        best = separate([s.spec for s in sides], best, rounds, metric, mode, echo, labels, store)
    tests: list[dict[str, Any]] = [{} for _ in sides]  # a training function's test split is its own
    if specs[0].workload is not None:
        echo("evaluating each sweep's chosen config on the test split (once, over its seed re-runs)")
        tests = [
            evaluate_seed_runs(s.spec.base_config(), b, s.spec.resources.cpu, s.spec.resources.gpu)
            for s, b in zip(sides, best)
        ]
    ablated = []
    for side, b in zip(sides, best):
        if ablations(side.spec, b.params):
            echo(f"re-training {side.label}'s chosen config with only Q changed, on its {len(b.seeds)} seeds")
        ablated.append(ablate(side.spec, b, metric, mode, store))
    if store.read:
        echo(f"{store.read} seed re-runs were read back from {store.folder}, not trained again")
    judged = judge(sides, best, tests, ablated, num_samples=n, target=target, rounds=rounds, left_out=left_out)
    (folder / "comparison.json").write_text(json.dumps(judged.summary, indent=1, default=_json_default))
    page = comparison_page(judged.titles, labels, best, judged.versus, ablated, judged.summary)
    (folder / "comparison.html").write_text(page)
    return Comparison(folder, judged.verdict, judged.summary)


def _json_default(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else str(value)
