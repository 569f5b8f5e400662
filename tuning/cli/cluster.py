"""`fishleg-tune cluster-check`: the preflight of a cluster sweep, alone."""

from __future__ import annotations

import argparse

from rich.markup import escape

from tuning.cli.common import console, echo, quiet_libraries

__all__ = ["cluster_check"]


def cluster_check(args: argparse.Namespace) -> int:
    """`fishleg-tune cluster-check`: nodes, resources, storage and versions, checked and shown."""
    quiet_libraries(args.verbose)
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
