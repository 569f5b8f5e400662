"""Distributed sweeps on a real two-node Ray cluster on loopback (slow: CI runs them)."""

import json
import re
import subprocess
import time

import pytest
from mlflow import MlflowClient

from tests.loopback import loopback_cluster

from .conftest import sweep_file

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def ledger(folder):
    return json.loads((folder / "trials.json").read_text())


def node_roles(cluster):
    """{node id prefix: 'head' | 'worker'} from `fishleg-tune cluster-check`."""
    out = cluster.cli("cluster-check", "--address", cluster.address)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "preflight passed" in out.stdout
    return dict(re.findall(r"^\s+([0-9a-f]{12})\s+\S+\s+(head|worker)", out.stdout, re.M))


def test_sweep_spreads_over_both_nodes_and_tracks_every_trial(tmp_path):
    # The first two trials start together (a rendezvous): on two one-CPU nodes, one on each.
    rendezvous = {"name": "tests.tuning.plugins:rendezvous_digits", "folder": str(tmp_path / "met"), "count": 2}
    spec = sweep_file(
        tmp_path / "tiny.yaml", workload=rendezvous, scheduler={"type": "none"}, search={"num_samples": 4}
    )
    with loopback_cluster(workers=1) as cluster:
        roles = node_roles(cluster)
        assert sorted(roles.values()) == ["head", "worker"]
        out = cluster.cli(*cluster.sweep_args(spec, tmp_path / "runs"))
    assert out.returncode == 0, out.stdout + out.stderr
    folder = tmp_path / "runs" / "tiny"
    records = ledger(folder)
    assert len(records) == 4 and all(r["status"] == "COMPLETE" for r in records)
    used = {n[:12] for r in records for n in r["node_ids"]}
    assert used == set(roles)  # trials ran on the head and on the worker
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(r["trial_id"] for r in records)
    assert all(r.info.status == "FINISHED" for r in runs)


def test_worker_node_death_mid_sweep_loses_nothing(tmp_path):
    spec = sweep_file(
        tmp_path / "slow.yaml",
        workload={"name": "digits_classifier", "hidden": [256, 256]},
        training={"epochs": 6, "batch_size": 16},
        scheduler={"type": "none"},
        search={"num_samples": 3, "max_failures": 3},
    )
    folder = tmp_path / "runs" / "tiny"
    with loopback_cluster(workers=1) as cluster:
        worker = next(k for k, v in node_roles(cluster).items() if v == "worker")
        driver = subprocess.Popen(
            cluster.command(*cluster.sweep_args(spec, tmp_path / "runs")),
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.time() + 300
        victim = None
        while victim is None and time.time() < deadline:
            time.sleep(0.5)
            if not (folder / "trials.json").exists():
                continue
            victim = next(
                (
                    r["trial_id"]
                    for r in ledger(folder)
                    if r["status"] == "RUNNING"
                    and r["history"]
                    and r["history"][-1]["node_id"].startswith(worker)
                    and r["epochs"] >= 2
                ),
                None,
            )
        assert victim is not None, "no trial reached epoch 2 on the worker node"
        cluster.kill_node(cluster.nodes[1])
        out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out
    records = {r["trial_id"]: r for r in ledger(folder)}
    assert len(records) == 3
    assert all(r["status"] == "COMPLETE" for r in records.values()), out
    resumed = records[victim]
    assert resumed["epochs"] == 6
    assert any(row.get("started_at_epoch", 0) >= 2 for row in resumed["history"]), out  # restored from a checkpoint
    assert len(resumed["node_ids"]) == 2  # began on the worker, finished on the head
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)


def test_preflight_refuses_what_the_cluster_cannot_run(tmp_path):
    """A resource request no node meets, and a node-local storage path on two nodes: exit 2
    with the reason, before any trial or sweep folder exists."""
    big = sweep_file(tmp_path / "big.yaml", resources={"cpu": 4})
    small = sweep_file(tmp_path / "small.yaml")
    with loopback_cluster(workers=1) as cluster:
        too_big = cluster.cli(*cluster.sweep_args(big, tmp_path / "a"))
        node_local = cluster.cli(
            "search", str(small), "--address", cluster.address, "--storage-path", str(tmp_path / "b")
        )
    assert too_big.returncode == 2, too_big.stdout + too_big.stderr
    assert "a trial asks for 4 CPU" in too_big.stderr and "1 CPU" in too_big.stderr
    assert node_local.returncode == 2 and "this is a local path" in node_local.stderr
    for out in (too_big, node_local):
        assert "Traceback" not in out.stderr
    assert not list(tmp_path.glob("*/tiny/sweep.json"))
