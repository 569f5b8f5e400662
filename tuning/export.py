"""Choosing the best trial fairly and exporting it as a config production training loads.

Trials stopped early report a truncated metric, so the best is chosen among trials that ran
the full budget; if none did, among those that ran longest, and the export says so."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning.config import RunConfig, save_config
from tuning.ledger import DIVERGED, FAILED, TrialRecord
from tuning.spec import apply_params
from tuning.versions import package_versions

__all__ = ["Best", "rank_trials", "select_best", "write_best_config"]

PACKAGES = ("fishleg-tune", "torch", "ray", "optuna", "mlflow")


@dataclass(frozen=True)
class Best:
    """The chosen trial, the value it was chosen by, and whether it ran the full budget."""

    record: TrialRecord
    value: float
    full_budget: bool


def rank_trials(records: list[TrialRecord], metric: str, mode: str, min_epochs: int = 0) -> list[TrialRecord]:
    """Trials with a value that ran at least `min_epochs`, longest-trained first, then best
    metric first."""
    scored = [
        r
        for r in records
        if r.value(metric) is not None and r.status not in (FAILED, DIVERGED) and r.epochs >= min_epochs
    ]
    sign = 1.0 if mode == "min" else -1.0
    return sorted(scored, key=lambda r: (-r.epochs, sign * r.value(metric)))


def select_best(records: list[TrialRecord], metric: str, mode: str, budget: int) -> Best | None:
    """The best trial among those that trained longest (the full budget if any did)."""
    ranked = rank_trials(records, metric, mode)
    if not ranked:
        return None
    top = ranked[0]
    return Best(top, float(top.value(metric)), top.epochs >= budget)


def write_best_config(
    best: Best,
    base: dict[str, Any],
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
) -> RunConfig:
    """best_config.yaml: the train-config format plus `provenance`: the validation value it was
    chosen by, `test` (its test metrics, evaluated once after the choice; null until the
    sweep ends) with `test_on` saying on what, and, when the top trials were re-trained with
    fresh seeds, `seed_runs`: the seeds, their validation finals, mean and std."""
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
    config = RunConfig.model_validate({**apply_params(base, best.record.params), "provenance": provenance})
    save_config(config, path)
    return config
