"""MLflow tracking: flattening configs into params, and one run per `fishleg-tune train`.

Sweeps log from the driver only (a Ray Tune callback, `tuning.sweep.MlflowSweepCallback`), so trials
never open the store themselves and sqlite is never written by two processes at once."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuning.errors import UserError

__all__ = ["MlflowRun", "check_tracking_uri", "default_tracking_uri", "flatten", "maybe_run"]


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


def default_tracking_uri(folder: Path) -> str:
    """A sqlite store at an absolute path (a relative one would resolve in each trial's cwd)."""
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def check_tracking_uri(uri: str) -> None:
    """Fail fast, before any work, if an http(s) tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
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


class MlflowRun:
    """One MLflow run written through the client API (no global active-run state)."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        all_tags = dict(tags or {})
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=all_tags).info.run_id
        self.experiment_id = exp_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str) -> None:
        """status: FINISHED, FAILED or KILLED — a run is never left RUNNING."""
        self.client.set_terminated(self.run_id, status=status)


@contextmanager
def maybe_run(uri: str | None, experiment: str, run_name: str) -> Iterator[MlflowRun | None]:
    """An MLflow run that ends FINISHED, FAILED (exception) or KILLED (Ctrl-C); None if no uri."""
    if uri is None:
        yield None
        return
    run = MlflowRun(uri, experiment, run_name)
    try:
        yield run
    except KeyboardInterrupt:
        run.end("KILLED")
        raise
    except BaseException:
        run.end("FAILED")
        raise
    run.end("FINISHED")
