"""`fishleg-tune`: parse, call, print, exit code. Bad input exits 2 with one paragraph.

Each command imports what it needs when it runs, so `fishleg-tune train` never loads Ray,
Optuna or MLflow (unless asked to log), and `--help` answers at once."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from tuning.errors import NonFiniteLoss, UserCodeError, UserError

if TYPE_CHECKING:
    from tuning.driver import SweepOutcome, SweepPlan
    from tuning.run.overrides import Override

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    130,
)  # failed: no result (a diverged run, no trial completed)

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def echo(text: str) -> None:
    """Print a line as it is: progress lines name the user's paths, keys and values, which rich
    would otherwise read as markup (`[/b]` in a path is an error to rich)."""
    console.print(text, markup=False)


def _check_file(path: Path | str) -> None:
    """A file argument that is missing or not a regular file, refused before the command imports
    anything heavy (torch, Ray): such mistakes answer at once."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: cannot read the file (No such file or directory).")
    if not path.is_file():  # a FIFO nobody writes would block the read forever
        raise UserError(f"{path}: not a regular file (a folder, a pipe or a device); give a YAML file.")


def _overrides(args: argparse.Namespace, source: object, aliases: dict[str, str] | None = None) -> list[Override]:
    """The command's `KEY=VALUE`s, then the options that stand for one (`--epochs 2` is
    `training.epochs=2`), each named in errors as the user wrote it."""
    from tuning.run.overrides import option_overrides, parse_overrides

    return [*parse_overrides(args.overrides, str(source)), *option_overrides(vars(args), aliases or {})]


def _run_name(config: Path) -> str:
    """A run's default folder name: the config's stem, or for an exported best_config.yaml the
    name of its sweep (two sweeps' best configs do not share runs/best_config)."""
    return config.resolve().parent.name if config.name == "best_config.yaml" else config.stem


def _train(args: argparse.Namespace) -> int:
    _check_file(args.config)
    from tuning.records.tracking import check_tracking_uri
    from tuning.run.config import NO_OPTIMIZER, load_run_config
    from tuning.run.trainer import train_to_folder
    from tuning.workloads import validate_workload

    aliases = {"epochs": "training.epochs", "seed": "training.seed", "device": "training.device"}
    config = load_run_config(args.config, overrides=_overrides(args, args.config, aliases))
    if config.workload is not None:
        validate_workload(config.workload, str(args.config))
    if "optimizer" not in config.model_fields_set:
        echo(f"note: {NO_OPTIMIZER}")
    if args.mlflow_uri:
        check_tracking_uri(args.mlflow_uri)
    output = Path(args.output or Path("runs") / _run_name(Path(args.config)))
    with Progress(console=console, disable=not console.is_terminal, transient=True) as progress:
        result = train_to_folder(
            config,
            output,
            source=str(args.config),
            resume=args.resume,
            mlflow_uri=args.mlflow_uri,
            experiment=args.experiment,
            echo=echo,
            progress=progress,
            overwrite=args.overwrite,
        )
    shown = ", ".join(
        f"{k} {v:.4g}" for k, v in {**result.metrics, **result.test}.items() if k.startswith(("val_", "test_"))
    )
    tested = " (test evaluated once, at the end)" if result.test else ""
    test_file = f", {output / 'test_metrics.json'}" if result.test else ""
    console.print(f"\n[bold]done[/bold]: {result.epochs} epochs, {escape(shown)}{tested}.")
    echo(
        f"  metrics:    {output / 'metrics.jsonl'}{test_file}\n"
        f"  checkpoint: {output / 'checkpoint.pt'}\n"
        f"  config:     {output / 'config.yaml'}"
    )
    return 0


def format_plan(plan: SweepPlan) -> str:
    """What a sweep will do, as `--dry-run` shows it and a sweep prints before it starts (plain
    text: it holds the user's paths, keys and values)."""
    spec, folder = plan.spec, plan.folder.path
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
    if plan.overrides:
        lines.append(f"  overrides  {' '.join(o.shown for o in plan.overrides)}")
    lines.extend(f"  warning    {w}" for w in spec.warnings)
    lines.append(f"  results    {folder}")
    lines.append(f"  MLflow     {plan.mlflow_uri}")
    if not plan.mlflow_uri.startswith("http"):
        lines.append(f"  watch it   mlflow ui --backend-store-uri {plan.mlflow_uri}  (live, while trials run)")
    return "\n".join(lines)


def _print_outcome(outcome: SweepOutcome) -> int:
    """The sweep's closing summary; returns the exit status (interrupted: 130)."""
    from tuning.records.folder import SweepFolder
    from tuning.records.ledger import COMPLETE, format_counts
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
            f'  in code:      FishLeg.from_config(model, fishleg.load_config("{path}"), likelihood=...)'
        )
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
    if not outcome.counts.get(COMPLETE):
        err_console.print("[red]no trial completed[/red]: the sweep has no full-budget result.", soft_wrap=True)
        return EXIT_FAILED
    return EXIT_OK


def _search(args: argparse.Namespace) -> int:
    from tuning.sweep.cluster import resolve_address

    address = resolve_address(args.address)
    _check_file(args.spec)
    _quiet_libraries(args.verbose)
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
        overrides=_overrides(args, args.spec),
    )
    echo(format_plan(plan))
    if args.dry_run:
        echo("  resolved sweep file:")
        console.print(
            "    " + yaml.safe_dump(plan.data, sort_keys=False).rstrip().replace("\n", "\n    "), markup=False
        )
        return EXIT_OK
    outcome = start_sweep(
        plan,
        address=address,
        shared_storage=args.shared_storage,
        robust_top=args.robust_top,
        seeds=args.seeds,
        keep_checkpoints=args.keep_checkpoints,
        echo=echo,
        overwrite=args.overwrite,
    )
    return _print_outcome(outcome)


def _resume(args: argparse.Namespace) -> int:
    _quiet_libraries(args.verbose)
    from tuning.driver import resume_sweep
    from tuning.sweep.cluster import resolve_address

    address = resolve_address(args.address)
    outcome = resume_sweep(args.folder, address=address, shared_storage=args.shared_storage, echo=echo)
    return _print_outcome(outcome)


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from tuning.records.folder import SweepFolder
    from tuning.records.ledger import Ledger, format_counts, format_value, rank_trials
    from tuning.records.lock import holder
    from tuning.sweep.spec import load_sweep

    storage = Path(args.storage_path)
    if not storage.is_dir():
        raise UserError(f"--storage-path {storage}: no such folder; sweeps go to fishleg-runs/ unless told.")
    table = Table()
    for column in ("sweep", "state", "trials", "best", "created"):
        table.add_column(column, overflow="fold")
    for path in sorted(p for p in storage.iterdir() if (p / SweepFolder.META).is_file()):
        folder = SweepFolder.at(path)
        ledger = Ledger(folder.ledger_file) if folder.ledger_file.exists() else None
        records = list(ledger.records.values()) if ledger else []
        spec = load_sweep(folder.spec_file)
        ranked = rank_trials(records, spec.metric.name, spec.metric.mode)
        best = f"{spec.metric.name} {format_value(ranked[0].value(spec.metric.name))}" if ranked else ""
        state = "running" if holder(path) else ("done" if folder.best_file.exists() else "stopped")
        counts = format_counts(ledger.counts()) if ledger else ""
        cells = (path.name, state, counts, best, str(folder.meta().get("created", "")))
        table.add_row(*map(Text, cells))
    console.print(table if table.row_count else f"no sweeps in {storage}", markup=False)
    return 0


def _best(args: argparse.Namespace) -> int:
    import json

    from tuning.records.folder import SweepFolder
    from tuning.records.ledger import Ledger, rank_trials, trials_table
    from tuning.run.config import load_run_config
    from tuning.sweep.spec import load_sweep

    folder = SweepFolder.at(args.folder)
    if not folder.ledger_file.exists():
        raise UserError(f"{folder.path}: no {folder.LEDGER}; give the STORAGE/NAME folder of a sweep.")
    spec = load_sweep(folder.spec_file)
    metric = spec.metric.name
    records = list(Ledger(folder.ledger_file).records.values())
    ranked = rank_trials(records, metric, spec.metric.mode)
    best_file = folder.best_file
    if args.json:
        payload = {
            "best_config": load_run_config(best_file).to_dict() if best_file.exists() else None,
            "top": [
                {
                    "trial_id": r.trial_id,
                    "status": r.status,
                    "epochs": r.epochs,
                    metric: r.value(metric),
                    "params": r.params,
                }
                for r in ranked[: args.top]
            ],
        }
        print(json.dumps(payload, indent=1))
        return 0
    console.print(trials_table(ranked, metric, args.top))
    if best_file.exists():
        chosen = load_run_config(best_file).provenance or {}  # a damaged file is named, not printed
        shown = " ".join(f"{k.removeprefix('optimizer.')}={v}" for k, v in chosen.get("params", {}).items())
        echo(f"best config (trial {chosen.get('trial_id', '?')}): {best_file}\n  {shown}")
    return 0


def _report(args: argparse.Namespace) -> int:
    _quiet_libraries(args.verbose)
    from tuning.report import write_report

    report = write_report(args.folder, png=args.png)
    for note in report.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    for path in report.figures.values():
        echo(f"  figure: {path}")
    echo(f"report: {report.html}  (one interactive file; opens offline in a browser)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    # Sweep files first, then KEY=VALUEs: an argument that is no file but has a `=` is an override.
    specs = [a for a in args.sweeps if "=" not in a or Path(a).exists()]
    tail = args.sweeps[len(specs) :]
    args.overrides = [*tail, *args.overrides]  # those after an option come from `_parse`
    if tail != [a for a in args.sweeps if a not in specs]:
        raise UserError(f"compare: sweep files come before the KEY=VALUE overrides (got {' '.join(args.sweeps)}).")
    if len(specs) < 2:
        raise UserError(f"compare needs at least two sweep files; got {len(specs)}.")
    for spec in specs:
        _check_file(spec)
    _quiet_libraries(args.verbose)
    from tuning.compare import compare_sweeps
    from tuning.sweep.cluster import resolve_address

    address = resolve_address(args.address)
    result = compare_sweeps(
        [Path(s) for s in specs],
        storage=args.storage_path,
        num_samples=args.num_samples,
        seeds=args.seeds,
        top_k=args.top_k,
        target=args.target,
        address=address,
        echo=echo,
        overrides=_overrides(args, ", ".join(specs)),
    )
    echo(f"\nreport: {result.folder / 'comparison.html'}\nnumbers: {result.folder / 'comparison.json'}")
    console.print(f"[bold]verdict[/bold]: {escape(result.verdict)}")
    return 0


def _cluster_check(args: argparse.Namespace) -> int:
    _quiet_libraries(args.verbose)
    from tuning.records.tracking import check_tracking_uri
    from tuning.run.plugins import local_sources
    from tuning.sweep import cluster
    from tuning.sweep.preflight import check_cluster, check_ray_address, check_spec, check_versions
    from tuning.sweep.spec import load_sweep
    from tuning.sweep.tuner import connect

    address = cluster.resolve_address(args.address)
    check_ray_address(address)
    spec = None
    if args.spec is not None:
        spec = load_sweep(args.spec)
        check_spec(spec, str(args.spec))
    if args.mlflow_uri:
        check_tracking_uri(args.mlflow_uri)
    connect(address, [] if spec is None else local_sources(spec.plugin_names))
    echo(cluster.describe(cluster.nodes()))
    if spec is not None:
        check_cluster(spec, str(args.storage_path), address, args.shared_storage)
    elif address is not None:
        check_versions(cluster.nodes())
    console.print(
        "[green]preflight passed[/green]: the cluster answers"
        + (f", a trial of {escape(str(args.spec))} fits and its storage is usable" if spec is not None else "")
        + "."
    )
    return 0


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= minimum, else a one-line usage error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _option_parsers() -> dict[str, argparse.ArgumentParser]:
    """The options several commands share, each defined once (used as argparse parents)."""
    address = argparse.ArgumentParser(add_help=False)
    address.add_argument(
        "--address", help="Ray cluster address (HOST:PORT or auto; default $RAY_ADDRESS, else start Ray locally)"
    )
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument(
        "--storage-path", default="fishleg-runs", help="results go to STORAGE/NAME (a folder, or s3://, gs:// URI)"
    )
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--shared-storage", action="store_true", help="the storage folder is one every node shares (NFS)"
    )
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "--verbose", action="store_true", help="show Ray's, MLflow's and Optuna's own log lines and full tracebacks"
    )
    return {"address": address, "storage": storage, "shared": shared, "verbose": verbose}


OVERRIDES_HELP = "set a key of the file, e.g. training.epochs=2 resources.gpu=0 (values are YAML)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fishleg-tune")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The `fishleg-tune` command line: one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="fishleg-tune",
        description="Tune and train the FishLeg optimizer: Ray Tune + Optuna sweeps tracked in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    opts = _option_parsers()
    address, storage, shared, verbose = opts["address"], opts["storage"], opts["shared"], opts["verbose"]

    train = sub.add_parser(
        "train", parents=[verbose], help="train one config (a train file or an exported best_config.yaml)"
    )
    train.add_argument("config", type=Path, help="YAML with workload:, optimizer:, training:")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    train.add_argument(
        "--output", type=Path, help="output folder (default runs/CONFIG_NAME; runs/SWEEP for a best_config.yaml)"
    )
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    train.add_argument("--overwrite", action="store_true", help="replace a run of another config in OUTPUT")
    train.add_argument("--epochs", type=int, help="the same as training.epochs=N")
    train.add_argument("--seed", type=int, help="the same as training.seed=N")
    train.add_argument("--device", help="the same as training.device=D (auto, cpu, cuda, cuda:N)")
    train.add_argument("--mlflow-uri", help="log the run to this MLflow tracking URI")
    train.add_argument("--experiment", default="fishleg-tune", help="MLflow experiment name")
    train.set_defaults(func=_train)

    search = sub.add_parser(
        "search",
        parents=[storage, address, shared, verbose],
        help="run a sweep (Ray Tune + Optuna + ASHA, tracked in MLflow)",
    )
    search.add_argument("spec", type=Path, help="sweep file, e.g. search_spaces/quickstart.yaml")
    search.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    search.add_argument("--name", help="sweep name (default: the file's name: or its stem)")
    search.add_argument(
        "--overwrite", action="store_true", help="delete a sweep of the same name first (its results are lost)"
    )
    search.add_argument("--num-samples", type=int, help="the same as search.num_samples=N")
    search.add_argument("--max-concurrent", type=int, help="the same as search.max_concurrent=N")
    search.add_argument("--mlflow-uri", help="MLflow tracking URI (default: sqlite in the sweep folder)")
    search.add_argument("--experiment", help="MLflow experiment (default: the sweep name)")
    search.add_argument(
        "--dry-run", action="store_true", help="validate, print the plan and the resolved sweep file; run nothing"
    )
    search.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep every checkpoint of every trial (default: only the chosen trial's last, and running trials' newest)",
    )
    search.add_argument(
        "--robust-top",
        type=_count(0),
        default=0,
        metavar="K",
        help="re-train the top K trials with fresh seeds and export the best mean (default: off)",
    )
    search.add_argument(
        "--seeds", type=_count(1), default=3, help="fresh seeds per re-trained config (with --robust-top)"
    )
    search.set_defaults(func=_search)

    resume = sub.add_parser("resume", parents=[address, shared, verbose], help="continue an interrupted sweep")
    resume.add_argument("folder", type=Path, help="STORAGE/NAME of the sweep")
    resume.set_defaults(func=_resume)

    listing = sub.add_parser("list", parents=[storage, verbose], help="the sweeps in a storage folder, and their state")
    listing.set_defaults(func=_list)

    best = sub.add_parser("best", parents=[verbose], help="print the best config and the top trials of a sweep")
    best.add_argument("folder", type=Path, help="STORAGE/NAME of the sweep")
    best.add_argument("--top", type=_count(1), default=10, help="how many trials to list")
    best.add_argument("--json", action="store_true", help="machine-readable output")
    best.set_defaults(func=_best)

    report = sub.add_parser("report", parents=[verbose], help="write an interactive report.html of a sweep")
    report.add_argument("folder", type=Path, help="STORAGE/NAME of the sweep")
    report.add_argument("--png", action="store_true", help="also write static PNG figures to STORAGE/NAME/report/")
    report.set_defaults(func=_report)

    compare = sub.add_parser(
        "compare",
        parents=[storage, address, verbose],
        help="tune optimizers at equal budget and compare them on fresh seeds",
    )
    compare.add_argument(
        "sweeps",
        nargs="+",
        metavar="SWEEP.yaml|KEY=VALUE",
        help="two or more sweep files (FishLeg, AdamW, ...), then " + OVERRIDES_HELP + " (every file)",
    )
    compare.add_argument("--num-samples", type=int, help="trials per sweep (default: the largest of the files)")
    compare.add_argument("--seeds", type=_count(1), default=3, help="fresh seeds per re-trained config")
    compare.add_argument("--top-k", type=_count(1), default=3, help="configs of each sweep to re-train")
    compare.add_argument("--target", type=float, help="also report epochs and seconds to this metric value")
    compare.set_defaults(func=_compare, overrides=[])

    check = sub.add_parser(
        "cluster-check",
        parents=[storage, address, shared, verbose],
        help="run the cluster preflight alone and list nodes and resources",
    )
    check.add_argument("spec", type=Path, nargs="?", help="a sweep file whose resources and storage to check")
    check.add_argument("--mlflow-uri", help="an MLflow tracking server to check")
    check.set_defaults(func=_cluster_check)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """Called by the commands that run Optuna, Ray or MLflow (after their own light checks, so
    that a mistake answers without importing them). What the terminal shows is the command's
    own: its plan, one line per trial event (a failed trial's traceback goes to the sweep
    folder) and its summary. Ray's and MLflow's
    start-up lines, Tune's traceback of each failed trial and Optuna's INFO log are off unless
    `--verbose`. Optuna's experimental-feature warnings (multivariate/grouped TPE, constant
    liar) are not news to a user. Tune saves its experiment state every step (see
    `tuner.connect`), so a save can replace a staging file while the previous upload still
    copies it: Tune logs that upload's failure with a traceback, and the next step's upload
    carries the state; only errors are shown."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # A restored trial reports its last epoch again (Tune replays it); Optuna keeps the first.
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.train._internal.syncer").setLevel(logging.ERROR)
    if verbose:
        return
    # Child loggers: Ray and MLflow set their top loggers' levels when they are imported.
    for name in ("mlflow.store", "alembic", "ray._private.authentication", "ray.tune.analysis"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):  # the trial errors, told by the command
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Options and `KEY=VALUE` overrides in any order after the file (argparse alone stops
    collecting positionals at the first option)."""
    args, rest = parser.parse_known_args(argv)
    stray = [item for item in rest if item.startswith("-") or "=" not in item or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    return args


def _is_config_error(exc: Exception) -> bool:
    """Whether `exc` is fishleg's ConfigError (a bad config file), without importing fishleg (and
    torch) when no command has loaded it."""
    config = sys.modules.get("fishleg.config")
    return config is not None and isinstance(exc, config.ConfigError)


def main(argv: Sequence[str] | None = None) -> int:
    """The `fishleg-tune` command: returns its exit status (0 done, 1 diverged, 2 bad input, 130 interrupted)."""
    args = _parse(build_parser(), argv)
    if os.getcwd() not in sys.path:  # as `python -m` does: `trainable: mypkg.train:fit` from here
        sys.path.insert(0, os.getcwd())
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except NonFiniteLoss as exc:
        err_console.print(f"[red]training stopped:[/red] {escape(str(exc))}.", soft_wrap=True)
        return EXIT_FAILED
    except UserCodeError as exc:
        err_console.print(f"[red]error in your code:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    except Exception as exc:
        if not isinstance(exc, UserError) and not _is_config_error(exc):
            raise
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err_console.print(
            "interrupted; completed work is kept (continue a training run with --resume, a sweep with "
            "fishleg-tune resume STORAGE/NAME)."
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
