"""`fishleg-tune`: parse, call, print, exit code. Bad input exits 2 with one paragraph."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from tuning.errors import USER_ERRORS, NonFiniteLoss

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _train(args: argparse.Namespace) -> int:
    from fishleg.config import load_config
    from tuning.tracking import check_tracking_uri
    from tuning.train import train_to_folder
    from tuning.workloads import validate_workload

    config = load_config(args.config)
    updates = {
        k: v for k, v in (("epochs", args.epochs), ("seed", args.seed), ("device", args.device)) if v is not None
    }
    if updates:
        config = config.model_copy(update={"training": config.training.model_copy(update=updates)})
    validate_workload(config.workload, str(args.config))
    if args.mlflow_uri:
        check_tracking_uri(args.mlflow_uri)
    output = Path(args.output or Path("runs") / Path(args.config).stem)
    result = train_to_folder(
        config,
        output,
        source=str(args.config),
        resume=args.resume,
        mlflow_uri=args.mlflow_uri,
        experiment=args.experiment,
        echo=console.print,
    )
    shown = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items() if k.startswith("val_"))
    console.print(
        f"\n[bold]done[/bold]: {result.epochs} epochs, {shown}.\n"
        f"  metrics:    {output / 'metrics.jsonl'}\n"
        f"  checkpoint: {output / 'checkpoint.pt'}\n"
        f"  config:     {output / 'config.yaml'}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fishleg-tune",
        description="Tune and train the FishLeg optimizer: Ray Tune + Optuna sweeps tracked in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train one config (a train file or an exported best_config.yaml)")
    train.add_argument("config", type=Path, help="YAML with workload:, optimizer:, training:")
    train.add_argument("--output", type=Path, help="output folder (default runs/CONFIG_NAME)")
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    train.add_argument("--epochs", type=int, help="override training.epochs")
    train.add_argument("--seed", type=int, help="override training.seed")
    train.add_argument("--device", help="override training.device (auto, cpu, cuda, cuda:N)")
    train.add_argument("--mlflow-uri", help="log the run to this MLflow tracking URI")
    train.add_argument("--experiment", default="fishleg-tune", help="MLflow experiment name")
    train.set_defaults(func=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except USER_ERRORS as exc:
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return 2
    except NonFiniteLoss as exc:
        err_console.print(f"[red]training stopped:[/red] {exc}. The last good checkpoint is kept.", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted; completed work is kept (rerun with --resume to continue).")
        return 130


if __name__ == "__main__":
    sys.exit(main())
