"""Running on a Ray cluster: where it is, and what it has (the checks made before any trial
are in `tuning.sweep.preflight`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from tuning.errors import UserError

__all__ = ["NodeInfo", "describe", "local_node", "nodes", "resolve_address"]


@dataclass(frozen=True)
class NodeInfo:
    """One alive Ray node: its id, address, CPUs, GPUs and whether it is the head."""

    node_id: str
    address: str
    cpu: float
    gpu: float
    head: bool


ADDRESS_FORM = re.compile(r"^(ray://)?[A-Za-z0-9._-]+:[0-9]{1,5}$")


def resolve_address(address: str | None) -> str | None:
    """--address wins; else RAY_ADDRESS; None starts Ray locally. Checked for its form
    (`HOST:PORT`, `ray://HOST:PORT` or `auto`) before anything runs."""
    where = "--address" if address else "$RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "auto":
        return address
    if not ADDRESS_FORM.match(address) or not 0 < int(address.rpartition(":")[2]) < 65536:
        raise UserError(
            f"{where}: {address!r} is not a Ray cluster address; allowed: HOST:PORT (e.g. 10.0.0.5:6379), "
            "ray://HOST:PORT (Ray Client) or auto; leave it out to start Ray locally."
        )
    return address


def local_node() -> NodeInfo:
    """This machine as the one node a local Ray would start: the CPUs this process may use,
    the GPUs torch sees (Ray counts them the same way), known before Ray starts."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return NodeInfo("local", "this machine", float(cpus), float(torch.cuda.device_count()), True)


def nodes() -> list[NodeInfo]:
    """The alive nodes of the connected cluster."""
    import ray  # here, not at the top: `resolve_address` runs before any command imports Ray

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


def describe(cluster: list[NodeInfo]) -> str:
    """A short table of the nodes and their resources, for `cluster-check`."""
    lines = [f"{len(cluster)} node(s), {sum(n.cpu for n in cluster):g} CPU, {sum(n.gpu for n in cluster):g} GPU"]
    for n in cluster:
        role = "head" if n.head else "worker"
        lines.append(f"  {n.node_id[:12]}  {n.address:<15} {role:<6} {n.cpu:g} CPU  {n.gpu:g} GPU")
    return "\n".join(lines)
