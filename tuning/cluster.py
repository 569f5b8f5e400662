"""Running on an existing Ray cluster: what it has, and the checks made before any trial.

Each check fails with a UserError naming what is wrong and what to do, so a sweep never
starts on a cluster that cannot finish it."""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tuning.errors import UserError

__all__ = ["NodeInfo", "check_fits", "check_shared_storage", "check_versions", "describe", "nodes", "resolve_address"]

PACKAGES = ("fishleg-tune", "torch", "ray")


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    address: str
    cpu: float
    gpu: float
    head: bool


def resolve_address(address: str | None) -> str | None:
    """--address wins; else RAY_ADDRESS; None starts Ray locally."""
    return address or os.environ.get("RAY_ADDRESS") or None


def nodes() -> list[NodeInfo]:
    """The alive nodes of the connected cluster."""
    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        out.append(
            NodeInfo(
                n["NodeID"],
                n["NodeManagerAddress"],
                res.get("CPU", 0.0),
                res.get("GPU", 0.0),
                "node:__internal_head__" in res,
            )
        )
    return out


def check_fits(cluster: list[NodeInfo], cpu: float, gpu: float) -> None:
    """One trial must fit on one node (a trial is one process)."""
    if any(n.cpu >= cpu and n.gpu >= gpu for n in cluster):
        return
    have = "; ".join(f"{n.address} ({n.node_id[:8]}): {n.cpu:g} CPU, {n.gpu:g} GPU" for n in cluster)
    missing = []
    if not any(n.cpu >= cpu for n in cluster):
        missing.append(f"no node has {cpu:g} CPU")
    if not any(n.gpu >= gpu for n in cluster):
        missing.append(f"no node has {gpu:g} GPU")
    raise UserError(
        f"resources: a trial asks for {cpu:g} CPU and {gpu:g} GPU but {', '.join(missing) or 'no node has both'}; "
        f"the cluster has {have}. Lower `resources:` in the sweep file or add nodes."
    )


def check_shared_storage(storage: str, cluster: list[NodeInfo], shared: bool) -> None:
    """On several nodes a plain path is node-local unless the user says it is shared (NFS)."""
    if "://" in storage or shared or len(cluster) < 2:
        return
    raise UserError(
        f"--storage-path {storage}: the cluster has {len(cluster)} nodes and this is a local path, so "
        "checkpoints written on one node could not be restored on another. Use a shared folder (NFS) "
        "and pass --shared-storage, or a cloud URI such as s3://bucket/sweeps."
    )


@ray.remote(num_cpus=0)
def _versions() -> dict[str, str]:
    return {p: _version(p) for p in PACKAGES}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def check_versions(cluster: list[NodeInfo]) -> None:
    """Every node must run the driver's versions of fishleg-tune, torch and ray."""
    mine = {p: _version(p) for p in PACKAGES}
    refs = {
        n: _versions.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)).remote()
        for n in cluster
    }
    bad = []
    for node, ref in refs.items():
        theirs = ray.get(ref, timeout=120)
        diff = [f"{p} {theirs[p]} (driver {mine[p]})" for p in PACKAGES if theirs[p] != mine[p]]
        if diff:
            bad.append(f"{node.address} ({node.node_id[:8]}): {', '.join(diff)}")
    if bad:
        raise UserError(
            "cluster: package versions differ from the driver's on " + "; ".join(bad) + ". Install the same "
            "versions on every node (pip install fishleg-tune==VERSION torch==VERSION) and restart them."
        )


def describe(cluster: list[NodeInfo]) -> str:
    lines = [f"{len(cluster)} node(s), {sum(n.cpu for n in cluster):g} CPU, {sum(n.gpu for n in cluster):g} GPU"]
    for n in cluster:
        role = "head" if n.head else "worker"
        lines.append(f"  {n.node_id[:12]}  {n.address:<15} {role:<6} {n.cpu:g} CPU  {n.gpu:g} GPU")
    return "\n".join(lines)
