"""`fishleg-tune compare`: sweep files tuned at equal budget and judged on fresh seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from tuning.cli.common import EXIT_INTERRUPTED, check_file, console, echo, err_console, overrides, quiet_libraries
from tuning.errors import UserError

__all__ = ["compare"]


def compare(args: argparse.Namespace) -> int:
    """`fishleg-tune compare A.yaml B.yaml ... [KEY=VALUE ...]`."""
    # Sweep files first, then KEY=VALUEs: an argument that is no file but has a `=` is an override.
    specs = [a for a in args.sweeps if "=" not in a or Path(a).exists()]
    tail = args.sweeps[len(specs) :]
    args.overrides = [*tail, *args.overrides]  # those after an option come from `parse`
    if tail != [a for a in args.sweeps if a not in specs]:
        raise UserError(f"compare: sweep files come before the KEY=VALUE overrides (got {' '.join(args.sweeps)}).")
    if args.summary:
        return _summary(args)
    if len(specs) < 2:
        raise UserError(f"compare needs at least two sweep files; got {len(specs)}.")
    for spec in specs:
        check_file(spec)
    quiet_libraries(args.verbose)
    from tuning.compare import compare_sweeps
    from tuning.sweep.cluster import resolve_address

    address = resolve_address(args.address)
    try:
        result = compare_sweeps(
            [Path(s) for s in specs],
            storage=args.storage_path,
            num_samples=args.num_samples,
            seeds=args.seeds,
            max_seeds=args.max_seeds,
            top_k=args.top_k,
            target=args.target,
            address=address,
            echo=echo,
            overrides=overrides(args, ", ".join(specs)),
        )
    except KeyboardInterrupt:
        err_console.print(
            "interrupted; the sweeps that finished are kept: run the same compare command again to continue "
            "(finished sweeps are read back, an unfinished one resumed)."
        )
        return EXIT_INTERRUPTED
    echo(f"\nreport: {result.folder / 'comparison.html'}\nnumbers: {result.folder / 'comparison.json'}")
    console.print(f"[bold]verdict[/bold]: {escape(result.verdict)}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    """`fishleg-tune compare --summary FOLDER ...`: comparisons on several workloads, summed up."""
    from tuning.summary import summarize

    if args.overrides or len(args.sweeps) < 2:
        raise UserError(
            f"compare --summary takes two or more comparison folders (what compare printed), no KEY=VALUE; "
            f"got {' '.join(args.sweeps + args.overrides)}."
        )
    result = summarize([Path(folder) for folder in args.sweeps], Path(args.storage_path) / "compare-summary")
    for line in result.lines:
        echo(line)
    echo(f"\nreport: {result.folder / 'summary.html'}\nnumbers: {result.folder / 'summary.json'}")
    return 0
