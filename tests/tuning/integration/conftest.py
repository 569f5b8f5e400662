"""Shared real services for the integration tests: one local Ray instance per session, and
helpers that start `mlflow server` as a loopback subprocess and stop it by PID."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import yaml

from tests.conftest import FISHLEG_TUNE
from tests.tuning.conftest import free_port
from tuning.sweep.tuner import connect


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under this folder runs real Ray Tune, Optuna and MLflow: mark it `integration`
    (a `pytestmark` in a conftest marks nothing)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    connect(None)
    yield
    ray.shutdown()


def sweep_file(path: Path, **overrides) -> Path:
    """A tiny digits sweep: 3 epochs, ASHA from epoch 1, two trials at a time."""
    spec = {
        "name": "tiny",
        "workload": {"name": "digits_classifier", "hidden": [16]},
        "optimizer": {"name": "fishleg", "update_aux_every": 5, "aux_batch_size": 32},
        "training": {"epochs": 3, "batch_size": 128, "seed": 0, "device": "cpu"},
        "metric": {"name": "val_loss", "mode": "min"},
        "space": {
            "optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
            "optimizer.q_structure": {"type": "categorical", "choices": ["diag", "kron", "kron_sum"]},
            "optimizer.kron_sum_rank": {
                "type": "int",
                "low": 2,
                "high": 3,
                "when": {"optimizer.q_structure": "kron_sum"},
            },
        },
        "search": {"sampler": "tpe", "seed": 0, "num_samples": 4, "max_concurrent": 2, "max_failures": 0},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "resources": {"cpu": 1},
    }
    for key, value in overrides.items():  # search/training/scheduler merge, other sections replace
        spec[key] = {**spec[key], **value} if key in ("search", "training", "scheduler") else value
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def gated(path: Path, gate: Path, gate_epoch: int, **options) -> Path:
    """The sweep file at `path`, its trials run by the quadratic training function instead, each
    waiting before epoch `gate_epoch` until the file `gate` exists: a test holds them at a known
    point for as long as it needs, or for ever. Run it from the repository root, where the
    `tests` package the trainable names is."""
    spec = yaml.safe_load(path.read_text())
    spec.pop("workload", None)
    trainable = {"name": "tests.tuning.plugins:fit_quadratic", "gate": str(gate), "gate_epoch": gate_epoch}
    spec["trainable"] = {**trainable, **options}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def slow_sweep(tmp_path: Path, num_samples: int, epochs: int, **search) -> tuple[Path, list[str]]:
    """A sweep of trials lasting a few seconds (so a signal can land mid-sweep): its folder
    and the `fishleg-tune search` command that runs it in a subprocess."""
    spec = sweep_file(
        tmp_path / "tiny.yaml",
        workload={"name": "digits_classifier", "hidden": [256, 256]},
        search={"num_samples": num_samples, **search},
        training={"epochs": epochs, "batch_size": 16},
    )
    cmd = [FISHLEG_TUNE, "search", str(spec), "--storage-path", str(tmp_path / "runs")]
    return tmp_path / "runs" / "tiny", cmd


@pytest.fixture
def mlflow_server(tmp_path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
