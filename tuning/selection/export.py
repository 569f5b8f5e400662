"""Exporting the chosen trial as a config production training loads (`best_config.yaml`),
with its provenance: how it was chosen (`tuning.records.ledger.select_best`), on what, and
its test metrics once evaluated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from tuning.records.ledger import Best
from tuning.run.config import RunConfig, save_config
from tuning.versions import package_versions

__all__ = ["write_best_config"]

PACKAGES = ("fishleg-tune", "torch", "ray", "optuna", "mlflow")


def write_best_config(
    best: Best,
    chosen: RunConfig,
    path: Path,
    *,
    metric: str,
    mode: str,
    budget: int,
    sweep_file: str,
    sweep_sha256: str,
    mlflow_uri: str | None,
    seed_runs: dict[str, Any] | None = None,
    test: dict[str, float] | None = None,
    test_info: dict[str, Any] | None = None,
    warm_start: list[dict[str, Any]] | None = None,
) -> RunConfig:
    """best_config.yaml: `chosen` (the best trial's run config) in the train-config format plus
    `provenance`: the validation value it was
    chosen by, `test` (its test metrics, evaluated once after the choice; null until the
    sweep ends) with `test_on` saying on what, and, when the top trials were re-trained with
    fresh seeds, `seed_runs`: the seeds, their validation finals, mean and std; `warm_start`: the
    earlier sweeps whose trials the sampler was told first, and how many of each."""
    provenance = {
        "metric": metric,
        "mode": mode,
        "value": best.value,
        "epochs": best.record.epochs,
        "budget": budget,
        "full_budget": best.full_budget,
        "trial_id": best.record.trial_id,
        "params": best.record.params,
        "mlflow_run_id": best.record.mlflow_run_id,
        "mlflow_tracking_uri": mlflow_uri,
        "sweep_file": sweep_file,
        "sweep_file_sha256": sweep_sha256,
        "packages": package_versions(PACKAGES, with_python=True),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    provenance["test"] = test
    provenance.update(test_info or {})
    if seed_runs is not None:
        provenance["seed_runs"] = seed_runs
    if warm_start:
        provenance["warm_start"] = warm_start
    config = chosen.model_copy(update={"provenance": provenance})
    save_config(config, path)
    return config
