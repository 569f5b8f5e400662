"""Every check made before a sweep starts, each failing with a UserError (or ConfigError)
that names what is wrong and what to do, so a sweep never starts that cannot finish.

`check_spec` needs nothing but the file; `check_storage` and `check_ray_address` the
machine; `check_cluster` a connected Ray cluster."""

from __future__ import annotations

import socket
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tuning.errors import ConfigError, UserError
from tuning.records.files import unwritable
from tuning.run.fit import Fit, load_fit
from tuning.sweep.cluster import NodeInfo, nodes
from tuning.sweep.space import make_sampler, validate_space
from tuning.sweep.spec import SweepSpec
from tuning.versions import package_versions
from tuning.workloads.base import validate_workload, workload_metrics

__all__ = [
    "check_cluster",
    "check_fits",
    "check_ray_address",
    "check_shared_storage",
    "check_spec",
    "check_storage",
    "check_versions",
]

CLUSTER_PACKAGES = ("fishleg-tune", "torch", "ray")


def check_spec(spec: SweepSpec, source: str, fit: Fit | None = None) -> None:
    """Every check that needs no cluster: the workload and its data (or the training function:
    `fit` when given as an object, else the one named), the metric, the space, the sampler."""
    if spec.workload is None:
        if fit is None and spec.trainable is not None:
            load_fit(spec.trainable.name, source)
        metrics = None
    else:
        validate_workload(spec.workload, source, data=True)
        metrics = workload_metrics(spec.workload, source)
    if metrics is not None and spec.metric.name not in metrics:
        raise ConfigError(
            f"{source}: metric.name: {spec.metric.name!r} is not reported by workload "
            f"{spec.subject!r}; allowed: {list(metrics)}."
        )
    if spec.training.device.startswith("cuda") and spec.resources.gpu == 0:
        raise ConfigError(
            f"{source}: training.device: {spec.training.device!r} but resources.gpu is 0, so trials get no GPU; "
            "set resources.gpu (e.g. 1, or 0.5 to share a card) or training.device: auto."
        )
    validate_space(spec, source)
    make_sampler(spec, source)


def check_storage(folder: Path) -> None:
    """The sweep folder can be made and written, found without making it (`unwritable`)."""
    problem = unwritable(folder)
    if problem is not None:
        raise UserError(f"--storage-path: cannot write to {folder} ({problem}); choose a writable folder.")


def check_ray_address(address: str | None) -> None:
    """A host:port that does not accept connections fails here, in seconds, not in ray.init."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            pass
    except (OSError, ValueError) as exc:
        raise UserError(
            f"--address {address}: no Ray cluster answers there ({exc}). Start one with "
            "`ray start --head --node-ip-address=127.0.0.1 --port PORT` or leave --address out to run locally."
        ) from None


def check_fits(cluster: list[NodeInfo], cpu: float, gpu: float, workers: int = 1) -> None:
    """A trial's process (each of its workers' processes) must fit on one node, and all of
    its workers on the cluster at once."""
    if any(n.cpu >= cpu and n.gpu >= gpu for n in cluster):
        room = sum(n.cpu // cpu if gpu == 0 else min(n.cpu // cpu, n.gpu // gpu) for n in cluster)
        if room >= workers:
            return
        raise UserError(
            f"resources.workers: a trial asks for {workers} workers of {cpu:g} CPU and {gpu:g} GPU but the cluster "
            f"holds {room:g} at once. Lower resources.workers (or resources.cpu/gpu) in the sweep file or add nodes."
        )
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
def _node_versions() -> dict[str, str]:
    return package_versions(CLUSTER_PACKAGES)


def check_versions(cluster: list[NodeInfo]) -> None:
    """Every node must run the driver's versions of fishleg-tune, torch and ray."""
    mine = package_versions(CLUSTER_PACKAGES)
    refs = {
        n: _node_versions.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)).remote()
        for n in cluster
    }
    bad = []
    for node, ref in refs.items():
        theirs = ray.get(ref, timeout=120)
        diff = [f"{p} {theirs[p]} (driver {mine[p]})" for p in CLUSTER_PACKAGES if theirs[p] != mine[p]]
        if diff:
            bad.append(f"{node.address} ({node.node_id[:8]}): {', '.join(diff)}")
    if bad:
        raise UserError(
            "cluster: package versions differ from the driver's on " + "; ".join(bad) + ". Install the same "
            "versions on every node (pip install fishleg-tune==VERSION torch==VERSION) and restart them."
        )


def check_cluster(spec: SweepSpec, storage: str, address: str | None, shared_storage: bool) -> None:
    """Checks that need the cluster: one trial fits, storage is reachable from every
    node, and (on an existing cluster) the workers run the driver's package versions."""
    cluster = nodes()
    check_fits(cluster, spec.resources.cpu, spec.resources.gpu, spec.resources.workers)
    check_shared_storage(storage, cluster, shared_storage)
    if address is not None:
        check_versions(cluster)
