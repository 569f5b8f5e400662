"""`fishleg-tune train`: one run config through the built-in loop or a training function."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.progress import Progress

from tuning.cli.common import check_file, console, echo, overrides

__all__ = ["run_name", "train"]


def run_name(config: Path) -> str:
    """A run's default folder name: the config's stem, or for an exported best_config.yaml the
    name of its sweep (two sweeps' best configs do not share runs/best_config)."""
    return config.resolve().parent.name if config.name == "best_config.yaml" else config.stem


def train(args: argparse.Namespace) -> int:
    """`fishleg-tune train CONFIG.yaml [KEY=VALUE ...]`: one run, its metrics and checkpoint."""
    check_file(args.config)
    from tuning.records.tracking import check_tracking_uri
    from tuning.run.config import NO_OPTIMIZER, load_run_config
    from tuning.training import train_to_folder
    from tuning.workloads import validate_workload

    aliases = {"epochs": "training.epochs", "seed": "training.seed", "device": "training.device"}
    config = load_run_config(args.config, overrides=overrides(args, args.config, aliases))
    if config.workload is not None:
        validate_workload(config.workload, str(args.config))
    if "optimizer" not in config.model_fields_set:
        echo(f"note: {NO_OPTIMIZER}")
    if args.mlflow_uri:
        check_tracking_uri(args.mlflow_uri)
    output = Path(args.output or Path("runs") / run_name(Path(args.config)))
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
