"""MLflow tracking through the client API (no global active-run state).

`fishleg-tune train` logs one run (`maybe_run`). A sweep has one parent run and one nested
child run per trial (`MlflowSweep`), all written from the driver by the ledger callback in
`tuning.sweep.callbacks`: trials never open the store, so sqlite never sees two writers."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuning.errors import UserError
from tuning.records.files import unwritable
from tuning.records.status import Status
from tuning.transient import Transients, transient

__all__ = [
    "MlflowSweep",
    "start_sweep_run",
    "Tracker",
    "check_tracking_uri",
    "default_tracking_uri",
    "experiment_id",
    "flatten",
    "maybe_run",
]

_RUN_STATUS = {
    Status.COMPLETE: "FINISHED",
    Status.PRUNED: "KILLED",
    Status.DIVERGED: "FAILED",  # MLflow has no such status; the tag `trial_status` says DIVERGED
    Status.FAILED: "FAILED",
    Status.TIMED_OUT: "KILLED",
    Status.INTERRUPTED: "KILLED",
    Status.LOST: "KILLED",  # a trial whose driver was killed as it started (tuning.sweep.reconcile)
}


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': 0.1}} → {'optimizer.lr': 0.1}; lists become strings."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return out


STORE_FILES = ("mlflow.db", "mlartifacts")  # the default MLflow store a sweep keeps in its folder


def default_tracking_uri(folder: Path) -> str:
    """A sqlite store at an absolute path (a relative one would resolve in each trial's cwd)."""
    return f"sqlite:///{(folder / STORE_FILES[0]).resolve()}"


URI_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def check_tracking_uri(uri: str) -> None:
    """Fail fast, before any work, on a URI MLflow cannot use or an http(s) tracking server
    that does not answer."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in URI_SCHEMES:
        raise UserError(
            f"--mlflow-uri {uri}: not a tracking URI MLflow can use; give one of "
            f"{', '.join(s + '://' for s in URI_SCHEMES)} (e.g. sqlite:///$PWD/mlflow.db or "
            "http://127.0.0.1:5000), or leave it out to use a sqlite store in the sweep folder."
        )
    problem = unwritable(Path(uri.split(":///", 1)[-1]).parent) if scheme == "sqlite" else None
    if problem is not None:
        raise UserError(
            f"--mlflow-uri {uri}: cannot write the sqlite store there ({problem}); give a writable path, "
            "or leave it out to use a sqlite store in the sweep folder."
        )
    if scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
            response.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"--mlflow-uri {uri}: the MLflow tracking server does not answer ({reason}). "
            "Start it (e.g. `mlflow server --host 127.0.0.1 --port 5000`) or leave --mlflow-uri out "
            "to use a local sqlite store."
        ) from None


# MLflow 3's UI opens an experiment on its GenAI overview unless the experiment is marked as
# model training, which opens it on the runs table (the sweep's parent run, trials nested).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(client: Any, name: str, artifacts: Path | None = None) -> str:
    """The experiment's id, creating it (marked as model training) if needed. `artifacts`:
    where a new experiment keeps its artifacts (MLflow's default for a sqlite store is
    ./mlruns under whatever the cwd is)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None if artifacts is None else artifacts.as_uri()
    return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


def runs_url(uri: str, experiment: str) -> str:
    """The address of the experiment's runs table in the MLflow UI: on the tracking server
    itself, or on `mlflow ui`'s default address for a local store."""
    base = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment}/runs"


class Tracker(Transients):
    """A lazily created MlflowClient plus the batched writes every run needs. Picklable:
    the client is dropped and made again where it is used."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @transient
    def client(self) -> Any:
        """The MlflowClient, made on first use."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def create_run(self, experiment: str, name: str, tags: Mapping[str, str] | None = None) -> str:
        """A new run in `experiment`; returns its id."""
        run = self.client.create_run(experiment, run_name=name, tags=dict(tags or {}))
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params in batches of 100 (MLflow's limit), values cut to 6,000 characters."""
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int) -> None:
        """Log the numeric entries of `metrics` at `step` in one batch."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if isinstance(v, (int, float))]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def end(self, run_id: str, status: str) -> None:
        """status: FINISHED, FAILED or KILLED — a run is never left RUNNING."""
        self.client.set_terminated(run_id, status=status)


@contextmanager
def maybe_run(uri: str | None, experiment: str, run_name: str) -> Iterator[tuple[Tracker, str] | None]:
    """An MLflow run that ends FINISHED, FAILED (exception) or KILLED (Ctrl-C); None if no uri."""
    if uri is None:
        yield None
        return
    tracker = Tracker(uri)
    run_id = tracker.create_run(experiment_id(tracker.client, experiment), run_name)
    try:
        yield tracker, run_id
    except KeyboardInterrupt:
        tracker.end(run_id, "KILLED")
        raise
    except BaseException:
        tracker.end(run_id, "FAILED")
        raise
    tracker.end(run_id, "FINISHED")


class MlflowSweep(Tracker):
    """The sweep's layout: a parent run and one nested child run per trial."""

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str) -> None:
        super().__init__(uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id

    def start_trial(self, trial_id: str, params: Mapping[str, Any]) -> str:
        """A child run of the parent for one trial, with its sampled params."""
        tags = {"mlflow.parentRunId": self.parent_run_id, "trial_id": trial_id}
        run_id = self.create_run(self.experiment_id, trial_id, tags)
        self.log_params(run_id, params)
        return run_id

    def end_trial(self, run_id: str, status: str, error: str | None) -> None:
        """End a trial's run with its ledger status as tag and, if it failed, the reason."""
        self.client.set_tag(run_id, "trial_status", status)
        if error:
            self.client.set_tag(run_id, "failure_reason", error[:5000])
        self.end(run_id, _RUN_STATUS[status])

    def reopen(self, run_id: str) -> None:
        """Mark a run RUNNING again (a resumed sweep continues its runs)."""
        self.client.update_run(run_id, status="RUNNING")


def start_sweep_run(
    uri: str, experiment: str, name: str, folder: Path, params: Mapping[str, Any], sweep_file: Path
) -> MlflowSweep:
    """The sweep's parent run, with its params and the sweep file as an artifact. A sqlite
    store keeps the experiment's artifacts in the sweep folder (MLflow's default would be
    ./mlruns in whatever the working directory is)."""
    probe = MlflowSweep(uri, "", "")
    local_store = uri.startswith("sqlite:")
    exp_id = experiment_id(probe.client, experiment, folder / STORE_FILES[1] if local_store else None)
    parent = probe.create_run(exp_id, name, {"fishleg_tune.sweep_folder": str(folder)})
    sweep = MlflowSweep(uri, exp_id, parent)
    sweep.log_params(parent, params)
    sweep.client.log_artifact(parent, str(sweep_file))
    return sweep
