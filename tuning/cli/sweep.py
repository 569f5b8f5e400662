"""`fishleg-tune search` and `resume`: a sweep's plan, its run and its closing summary."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.markup import escape

from tuning.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    check_file,
    console,
    echo,
    err_console,
    overrides,
    quiet_libraries,
)

if TYPE_CHECKING:
    from tuning.driver import SweepOutcome, SweepPlan

__all__ = ["format_plan", "print_outcome", "resume", "search"]


def format_plan(plan: SweepPlan) -> str:
    """What a sweep will do, as `--dry-run` shows it and a sweep prints before it starts (plain
    text: it holds the user's paths, keys and values)."""
    spec, folder = plan.file.spec, plan.folder.path
    lines = [
        f"sweep {folder.name}: {spec.search.num_samples} trials of {spec.subject} "
        f"with {spec.optimizer.name}, {spec.budget} epochs each at most"
    ]
    test = "test once, at the end, for the chosen config" if spec.workload else "the test split is the function's own"
    lines.append(f"  metric     {spec.metric.name} ({spec.metric.mode}), on validation; {test}")
    lines.append(
        f"  sampler    {spec.search.sampler} (seed {spec.search.seed}), "
        f"{spec.search.max_concurrent} at a time, {len(spec.search.points_to_evaluate)} given points first"
    )
    sched = spec.scheduler
    lines.append(f"  scheduler  {sched.type} (grace {spec.grace_period} epochs, reduction {sched.reduction_factor:g})")
    r = spec.resources
    each = f"{r.cpu:g} CPU, {r.gpu:g} GPU"
    lines.append(f"  resources  {each if r.workers == 1 else f'{r.workers} workers of {each}'} per trial")
    lines.append("  space")
    for name, p in spec.space.items():
        rng = f"{p.choices}" if p.type == "categorical" else f"[{p.low:g}, {p.high:g}]" + (" log" if p.log else "")
        cond = f"  when {p.when}" if p.when else ""
        lines.append(f"    {name:<32} {p.type:<12} {rng}{cond}")
    if plan.warm.sources:
        lines.append(
            f"  warm start {plan.warm.describe()}, told to the sampler before the first trial, "
            "the best of them run first"
        )
    if plan.file.overrides:
        lines.append(f"  overrides  {' '.join(o.shown for o in plan.file.overrides)}")
    lines.extend(f"  warning    {w}" for w in spec.warnings)
    lines.append(f"  results    {folder}")
    lines.append(f"  MLflow     {plan.mlflow_uri}")
    if not plan.mlflow_uri.startswith("http"):
        lines.append(f"  watch it   mlflow ui --backend-store-uri {plan.mlflow_uri}  (live, while trials run)")
    return "\n".join(lines)


def print_outcome(outcome: SweepOutcome) -> int:
    """The sweep's closing summary; returns the exit status (interrupted: 130)."""
    from tuning.records.folder import SweepFolder
    from tuning.records.ledger import format_counts
    from tuning.records.status import Status
    from tuning.sweep.callbacks import is_protocol_error

    counts = format_counts(outcome.counts)
    console.print(f"\n[bold]{'interrupted' if outcome.interrupted else 'done'}[/bold]: {counts}.")
    if outcome.best is not None:
        best = outcome.best
        flag = (
            ""
            if best.full_budget
            else f" [yellow](no trial ran the full budget; best at {best.record.epochs} epochs)[/yellow]"
        )
        path = outcome.folder / SweepFolder.BEST
        if outcome.test:
            test = ", ".join(f"{k} {v:.5g}" for k, v in outcome.test.items())
            test += " (evaluated once, after choosing on validation)"
        else:
            test = outcome.test_note or "not evaluated yet"
        console.print(f"  best {escape(outcome.metric)}: {best.value:.5g} (trial {best.record.trial_id}){flag}")
        echo(
            f"  its test:     {test}\n"
            f"  best config:  {path}\n"
            f"  train it:     fishleg-tune train {path}\n"
            f'  in code:      FishLeg.from_config(model, fishleg.load_config("{path}"), likelihood=..., aux_data=...)'
        )
    if outcome.budget_note is not None:
        echo(f"  time budget:  {outcome.budget_note}")
    echo(f"  trials:       fishleg-tune best {outcome.folder}  ({outcome.size / 1e6:.1f} MB on disk)")
    ui = outcome.mlflow_uri
    serve = "" if ui.startswith("http") else f"mlflow ui --backend-store-uri {ui}, then "
    echo(f"  MLflow UI:    {serve}open {outcome.runs_url or ui}")
    if outcome.interrupted:
        echo(f"  resume:       fishleg-tune resume {outcome.folder}")
        return EXIT_INTERRUPTED
    if outcome.failure is not None:
        err_console.print(
            f"[red]sweep stopped:[/red] its first {sum(outcome.counts.values())} trials all failed with the same "
            f"error, so the rest of the budget was not spent: {escape(outcome.failure)} "
            f"(tracebacks: {escape(str(outcome.folder / SweepFolder.ERRORS))})",
            soft_wrap=True,
        )
        return EXIT_BAD_INPUT if is_protocol_error(outcome.failure) else EXIT_FAILED
    if not outcome.counts.get(Status.COMPLETE):
        why = "the sweep has no full-budget result" if outcome.budget_note is None else outcome.budget_note
        err_console.print(f"[red]no trial completed[/red]: {escape(why)}.", soft_wrap=True)
        return EXIT_FAILED
    return EXIT_OK


def search(args: argparse.Namespace) -> int:
    """`fishleg-tune search SWEEP.yaml [KEY=VALUE ...]`: the plan, then the sweep and its summary."""
    from tuning.sweep.cluster import resolve_address

    address = resolve_address(args.address)
    check_file(args.spec)
    quiet_libraries(args.verbose)
    import yaml

    from tuning.driver import plan_sweep, start_sweep

    plan = plan_sweep(
        args.spec,
        storage=args.storage_path,
        name=args.name,
        num_samples=args.num_samples,
        max_concurrent=args.max_concurrent,
        mlflow_uri=args.mlflow_uri,
        experiment=args.experiment,
        robust_top=args.robust_top,
        seeds=args.seeds,
        overrides=overrides(args, args.spec),
    )
    echo(format_plan(plan))
    if args.dry_run:
        echo("  resolved sweep file:")
        console.print(
            "    " + yaml.safe_dump(plan.file.data, sort_keys=False).rstrip().replace("\n", "\n    "), markup=False
        )
        return EXIT_OK
    outcome = start_sweep(
        plan,
        address=address,
        shared_storage=args.shared_storage,
        keep_checkpoints=args.keep_checkpoints,
        echo=echo,
        overwrite=args.overwrite,
    )
    return print_outcome(outcome)


def resume(args: argparse.Namespace) -> int:
    """`fishleg-tune resume STORAGE/NAME`: an interrupted sweep to its end."""
    quiet_libraries(args.verbose)
    from tuning.driver import resume_sweep
    from tuning.sweep.cluster import resolve_address

    address = resolve_address(args.address)
    outcome = resume_sweep(args.folder, address=address, shared_storage=args.shared_storage, echo=echo)
    return print_outcome(outcome)
