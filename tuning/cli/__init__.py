"""`fishleg-tune`: parse, call, print, exit code. Bad input exits 2 with one paragraph.

Each command imports what it needs when it runs, so `fishleg-tune train` never loads Ray,
Optuna or MLflow (unless asked to log), and `--help` or a missing file answers at once. One
module per subcommand (`train`, `sweep`: search and resume, `folders`: list, best and report,
`compare`, `cluster`); `parser` builds the command line, `common` holds what they share."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from rich.markup import escape

from tuning.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, err_console
from tuning.cli.parser import build_parser, parse
from tuning.errors import NonFiniteLoss, UserCodeError, UserError

__all__ = ["build_parser", "command", "main", "parse"]


def main(argv: Sequence[str] | None = None) -> int:
    """The `fishleg-tune` command: returns its exit status (0 done, 1 diverged, 2 bad input, 130 interrupted)."""
    args = parse(build_parser(), argv)
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
    except UserError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err_console.print(
            "interrupted; completed work is kept (continue a training run with --resume, a sweep with "
            "fishleg-tune resume STORAGE/NAME)."
        )
        return EXIT_INTERRUPTED


def command() -> NoReturn:
    """The installed `fishleg-tune`: `main`, then what an exit waits for (threads still working,
    e.g. an upload to the storage URI; the exit handlers: Ray's shutdown of the local cluster it
    started, logging's and MLflow's flushes), then the exit itself, skipping only the
    interpreter's teardown of the modules torch, Ray and MLflow loaded: by then every record is
    on disk, and that teardown is seconds a user (and every test) waits for nothing."""
    status = main()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
