"""What every subcommand shares: the consoles (user text printed as text, never as markup),
exit statuses, the light checks made before anything heavy is imported, and the libraries'
log settings."""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from tuning.errors import UserError

if TYPE_CHECKING:
    from tuning.run.overrides import Override

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "check_file",
    "console",
    "echo",
    "err_console",
    "overrides",
    "quiet_libraries",
]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130  # failed: no result (diverged, none completed)

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def echo(text: str) -> None:
    """Print a line as it is: progress lines name the user's paths, keys and values, which rich
    would otherwise read as markup (`[/b]` in a path is an error to rich)."""
    console.print(text, markup=False)


def check_file(path: Path | str) -> None:
    """A file argument that is missing or not a regular file, refused before the command imports
    anything heavy (torch, Ray): such mistakes answer at once."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: cannot read the file (No such file or directory).")
    if not path.is_file():  # a FIFO nobody writes would block the read forever
        raise UserError(f"{path}: not a regular file (a folder, a pipe or a device); give a YAML file.")


def overrides(args: argparse.Namespace, source: object, aliases: dict[str, str] | None = None) -> list[Override]:
    """The command's `KEY=VALUE`s, then the options that stand for one (`--epochs 2` is
    `training.epochs=2`), each named in errors as the user wrote it."""
    from tuning.run.overrides import option_overrides, parse_overrides

    return [*parse_overrides(args.overrides, str(source)), *option_overrides(vars(args), aliases or {})]


def quiet_libraries(verbose: bool) -> None:
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
