"""The `fishleg-tune` command line: one subcommand per task, each in its own module."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from tuning.cli import cluster, folders, sweep
from tuning.cli import compare as compare_command
from tuning.cli import train as train_command

__all__ = ["OVERRIDES_HELP", "build_parser", "parse"]


def count(minimum: int) -> Callable[[str], int]:
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


def seed_count(text: str) -> int | str:
    """--seeds: a whole number >= 1, or 'auto'."""
    if text == "auto":
        return text
    try:
        return count(1)(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give a number of seeds, or 'auto'") from None


def option_parsers() -> dict[str, argparse.ArgumentParser]:
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


def version() -> str:
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
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    opts = option_parsers()
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
    train.set_defaults(func=train_command.train)

    search = sub.add_parser(
        "search",
        parents=[storage, address, shared, verbose],
        help="run a sweep (Ray Tune + Optuna + ASHA, tracked in MLflow)",
    )
    search.add_argument("spec", type=Path, help="sweep file, e.g. search_spaces/quickstart.yaml")
    search.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    search.add_argument("--name", help="sweep name (default: the file's name: or its stem)")
    search.add_argument(
        "--overwrite",
        action="store_true",
        help="delete a finished or failed sweep of the same name first (its MLflow runs are kept)",
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
        type=count(0),
        metavar="K",
        help="the same as selection.robust_top=K: re-train the top K trials with fresh seeds and export the best "
        "mean (default: off)",
    )
    search.add_argument(
        "--seeds", type=count(1), help="the same as selection.seeds=N: fresh seeds per re-trained config (default 3)"
    )
    search.set_defaults(func=sweep.search)

    resume = sub.add_parser("resume", parents=[address, shared, verbose], help="continue an interrupted sweep")
    resume.add_argument("folder", type=Path, help="STORAGE/NAME of the sweep")
    resume.set_defaults(func=sweep.resume)

    listing = sub.add_parser("list", parents=[storage, verbose], help="the sweeps in a storage folder, and their state")
    listing.set_defaults(func=folders.list_sweeps)

    best = sub.add_parser("best", parents=[verbose], help="print the best config and the top trials of a sweep")
    best.add_argument("folder", type=Path, help="STORAGE/NAME of the sweep")
    best.add_argument("--top", type=count(1), default=10, help="how many trials to list")
    best.add_argument("--json", action="store_true", help="machine-readable output")
    best.set_defaults(func=folders.best)

    report = sub.add_parser("report", parents=[verbose], help="write an interactive report.html of a sweep")
    report.add_argument("folder", type=Path, help="STORAGE/NAME of the sweep")
    report.add_argument("--png", action="store_true", help="also write static PNG figures to STORAGE/NAME/report/")
    report.set_defaults(func=folders.report)

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
    compare.add_argument(
        "--seeds",
        type=seed_count,
        default=3,
        help="fresh seeds per re-trained config, or 'auto': 3, then 2 more at a time for the leader and the "
        "runner-up until the leader is separated from it (or each has --max-seeds)",
    )
    compare.add_argument(
        "--max-seeds", type=count(3), default=9, help="with --seeds auto: the most seeds a side gets (default 9)"
    )
    compare.add_argument("--top-k", type=count(1), default=3, help="configs of each sweep to re-train")
    compare.add_argument("--target", type=float, help="also report epochs and seconds to this metric value")
    compare.add_argument(
        "--summary",
        action="store_true",
        help="sum up earlier comparisons on several workloads: give their folders instead of sweep files",
    )
    compare.set_defaults(func=compare_command.compare, overrides=[])

    check = sub.add_parser(
        "cluster-check",
        parents=[storage, address, shared, verbose],
        help="run the cluster preflight alone and list nodes and resources",
    )
    check.add_argument("spec", type=Path, nargs="?", help="a sweep file whose resources and storage to check")
    check.add_argument("--mlflow-uri", help="an MLflow tracking server to check")
    check.set_defaults(func=cluster.cluster_check)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Options and `KEY=VALUE` overrides in any order after the file (argparse alone stops
    collecting positionals at the first option)."""
    args, rest = parser.parse_known_args(argv)
    stray = [item for item in rest if item.startswith("-") or "=" not in item or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    return args
