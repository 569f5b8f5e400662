"""One sweep, from its file to its exported config, and its resume.

`plan_sweep` reads the sweep file once (`read_sweep_file`) and checks where it will run
(`place_sweep`; nothing runs); `start_sweep` runs the plan:
Ray, the MLflow parent run, the Tuner, then the export. `run_sweep` is both in one call.
Each step's concern lives in its own module: the folder and its lock (`records.folder`,
`records.lock`), the checks (`sweep.preflight`), Ray Tune and Optuna (`sweep.tuner`), MLflow
(`records.tracking`), the trial ledger (`records.ledger`) and the sweep's end: the choice, the
test split and the export (`selection.outcome`)."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from ray import tune
from ray.tune import ResultGrid

from tuning.errors import UserError
from tuning.records.folder import SweepFolder, check_name
from tuning.records.ledger import Ledger
from tuning.records.lock import LOCK_FILE, driver_lock, holder
from tuning.records.ray_processes import leftovers, record_ray_processes
from tuning.records.tracking import STORE_FILES, MlflowSweep, check_tracking_uri, flatten, start_sweep_run
from tuning.run.config import read_yaml_model
from tuning.run.fit import Fit, check_fit, function_name, load_fit
from tuning.run.overrides import Override, option_overrides
from tuning.run.plugins import local_sources
from tuning.selection.outcome import Echo, SweepOutcome, finish_sweep
from tuning.sweep.callbacks import TrialRecorder
from tuning.sweep.cluster import local_node
from tuning.sweep.preflight import check_cluster, check_fits, check_ray_address, check_spec, check_storage
from tuning.sweep.reconcile import (
    drop_lost_trials,
    end_unrecorded_runs,
    ended_results,
    restorable,
    tune_trial_ids,
)
from tuning.sweep.spec import SweepSpec, file_sha256, load_sweep
from tuning.sweep.trainable import retry_lost_processes_only
from tuning.sweep.tuner import connect, make_trainable, make_tuner, tune_environment
from tuning.sweep.warm_start import WarmStart, check_warm_start, tell_warm_start, warm_start
from tuning.yaml_files import parse_yaml

__all__ = [
    "Echo",
    "SweepFile",
    "SweepOutcome",
    "SweepPlan",
    "place_sweep",
    "plan_sweep",
    "read_sweep_file",
    "resume_sweep",
    "run_sweep",
    "start_sweep",
]

OPTION_KEYS = {  # the options of `search` (and `tuning.search`) that stand for a key of the sweep file
    "num_samples": "search.num_samples",
    "max_concurrent": "search.max_concurrent",
    "robust_top": "selection.robust_top",
    "seeds": "selection.seeds",
}


@dataclass(frozen=True)
class SweepFile:
    """A sweep file read and validated once, with the command-line overrides applied: the typed
    spec, the data it was validated from, the overrides (recorded with the sweep) and, when a
    Python caller passed one, the training function."""

    path: Path
    spec: SweepSpec
    data: dict[str, Any]
    overrides: tuple[Override, ...] = ()
    fit: Fit | None = None

    def with_num_samples(self, n: int) -> SweepFile:
        """This sweep with `n` trials, as `--num-samples n` would set it (compare's equal budget),
        without reading the file again."""
        if n == self.spec.search.num_samples:
            return self
        search = self.spec.search.model_copy(update={"num_samples": n})
        data = {**self.data, "search": {**self.data.get("search", {}), "num_samples": n}}
        override = Override("search.num_samples", n, f"--num-samples {n}")
        spec = self.spec.model_copy(update={"search": search})
        return replace(self, spec=spec, data=data, overrides=(*self.overrides, override))


@dataclass(frozen=True)
class SweepPlan:
    """A read sweep file (`file`: the checked spec, the data the sweep folder keeps and `resume`
    reads, the overrides, the training function a Python caller passed) and where it will run."""

    file: SweepFile
    folder: SweepFolder
    mlflow_uri: str
    experiment: str
    warm: WarmStart = field(default_factory=lambda: WarmStart([], []))

    def source(self) -> dict[str, Any]:
        """What the sweep folder records of the sweep's origin: the file's hash and the overrides
        (by which a compare run again knows the sweeps it ran)."""
        return {"sweep_file_sha256": file_sha256(self.file.path), "overrides": [o.text for o in self.file.overrides]}


def read_sweep_file(
    spec_path: Path,
    *,
    num_samples: int | None = None,
    max_concurrent: int | None = None,
    robust_top: int | None = None,
    seeds: int | None = None,
    fit: Fit | None = None,
    overrides: Sequence[Override] = (),
) -> SweepFile:
    """Read and validate the sweep file with the overrides applied (the options given stand
    for their keys). `fit`: a training function to tune (the file may then leave `trainable:`
    out)."""
    if fit is not None:
        check_fit(fit, "the function given to tuning.search")
    given = {"num_samples": num_samples, "max_concurrent": max_concurrent, "robust_top": robust_top, "seeds": seeds}
    overrides = (*overrides, *option_overrides(given, OPTION_KEYS))
    spec, data = read_yaml_model(spec_path, SweepSpec, None if fit is None else function_name(fit), overrides)
    return SweepFile(Path(spec_path), spec, data, tuple(overrides), fit)


def place_sweep(
    file: SweepFile,
    *,
    storage: str | Path,
    name: str | None = None,
    mlflow_uri: str | None = None,
    experiment: str | None = None,
) -> SweepPlan:
    """Where a read sweep file will run, after every check that needs no cluster."""
    spec, spec_path = file.spec, file.path
    if name is not None:
        check_name(name, "--name")
    elif spec.name is not None:
        check_name(spec.name, f"{spec_path}: name")
    name = name or spec.name or spec_path.stem
    folder = SweepFolder.locate(str(storage), name)
    check_storage(folder.path)
    check_spec(spec, str(spec_path), file.fit)
    warm = warm_start(spec, check_warm_start(spec, str(spec_path)))
    uri = mlflow_uri or spec.mlflow.tracking_uri or folder.default_mlflow_uri
    check_tracking_uri(uri)
    exp = experiment or spec.mlflow.experiment or name
    return SweepPlan(file, folder, uri, exp, warm)


def plan_sweep(
    spec_path: Path,
    *,
    storage: str | Path,
    name: str | None = None,
    num_samples: int | None = None,
    max_concurrent: int | None = None,
    mlflow_uri: str | None = None,
    experiment: str | None = None,
    robust_top: int | None = None,
    seeds: int | None = None,
    fit: Fit | None = None,
    overrides: Sequence[Override] = (),
) -> SweepPlan:
    """`read_sweep_file` then `place_sweep`: the file checked and placed, nothing run."""
    file = read_sweep_file(
        spec_path,
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        robust_top=robust_top,
        seeds=seeds,
        fit=fit,
        overrides=overrides,
    )
    return place_sweep(file, storage=storage, name=name, mlflow_uri=mlflow_uri, experiment=experiment)


def start_sweep(
    plan: SweepPlan,
    *,
    address: str | None = None,
    shared_storage: bool = False,
    keep_checkpoints: bool = False,
    echo: Echo = print,
    overwrite: bool = False,
) -> SweepOutcome:
    """Run a planned sweep to its end (or its interruption) and export the best config;
    `keep_checkpoints` keeps every trial's checkpoints (see `tuning.sweep.retention`);
    `overwrite` first deletes what the sweep folder holds (a finished or failed sweep of the
    same name), once no other driver uses it.

    Every check, the cluster's included, passes before anything is written: the sweep folder,
    the MLflow parent run and Tune's experiment are made only then."""
    folder = plan.folder
    check_ray_address(address)
    if address is None:  # a local Ray will have this machine's CPUs and GPUs: refuse before starting it
        r = plan.file.spec.resources
        check_fits([local_node()], r.cpu, r.gpu, r.workers)
    if not overwrite:
        _check_unused(folder)  # before the lock, which writes: a refused start changes nothing
    with driver_lock(folder.path, "search"):
        if overwrite:
            _empty(folder.path)
        _check_unused(folder, locked_here=True)  # again: another driver may have run it meanwhile
        kept = (LOCK_FILE, *STORE_FILES) if overwrite else (LOCK_FILE,)
        left = sorted(p.name for p in folder.path.iterdir() if p.name not in kept)
        if left:
            raise UserError(
                f"{folder.path} holds {', '.join(left)} but no {SweepFolder.META}: a sweep whose start was "
                f"interrupted before it began. Remove the folder (rm -r {folder.path}) to start it afresh, "
                "or choose another --name."
            )
        return _start_locked(plan, address, shared_storage, keep_checkpoints, echo)


def _empty(path: Path) -> None:
    """Delete a sweep's records from its folder: all but its lock (held by this process) and its
    MLflow store, where the earlier runs stay beside the new sweep's (MLflow is the history)."""
    for entry in path.iterdir():
        if entry.name in (LOCK_FILE, *STORE_FILES):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _check_unused(folder: SweepFolder, locked_here: bool = False) -> None:
    """A new sweep may start in `folder`: it holds none (`locked_here`: this process holds the
    lock, so no other driver runs it)."""
    if not folder.is_sweep():
        return
    running = None if locked_here else holder(folder.path)
    if running is not None:
        raise UserError(
            f"{folder.path} holds a sweep that is running now ({running}); wait for it to end, or choose "
            "another --name."
        )
    raise UserError(
        f"{folder.path} already holds a sweep; continue it with `fishleg-tune resume {folder.path}`, replace it "
        "with --overwrite, or choose another --name."
    )


def _start_locked(
    plan: SweepPlan,
    address: str | None,
    shared_storage: bool,
    keep_checkpoints: bool,
    echo: Echo,
) -> SweepOutcome:
    """`start_sweep`'s work, once this process holds the folder's lock and found it unused."""
    spec, folder = plan.file.spec, plan.folder
    with ThreadPoolExecutor(max_workers=1) as pool:
        warm = pool.submit(importlib.import_module, "mlflow")  # MLflow's import cost overlaps Ray's start-up
        connect(address, local_sources(spec.plugin_names))
        check_cluster(spec, folder.tune_storage, address, shared_storage)
        warm.result()
    _copy_spec(plan.file.path, folder.spec_file, plan.file.data, plan.file.overrides)
    params = flatten({k: v for k, v in spec.model_dump(mode="json").items() if k != "space"})
    params.update({f"space.{k}": json.dumps(v.model_dump(exclude_none=True)) for k, v in spec.space.items()})
    mlflow = start_sweep_run(plan.mlflow_uri, plan.experiment, folder.name, folder.path, params, folder.spec_file)
    meta = {
        "name": folder.name,
        "sweep_file": str(plan.file.path.resolve()),
        **plan.source(),
        "keep_checkpoints": keep_checkpoints,
        "warm_start": plan.warm.sources,
        "tune_storage": folder.tune_storage,
        "mlflow_uri": plan.mlflow_uri,
        "experiment_id": mlflow.experiment_id,
        "parent_run_id": mlflow.parent_run_id,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    folder.write_meta(meta)
    if plan.warm.trials:
        tell_warm_start(spec, folder.study_url, folder.name, plan.warm)
    if address is None:
        record_ray_processes(folder.path)
    seconds = _fit(  # the Tuner is made inside Tune's environment too
        lambda: make_tuner(spec, folder, mlflow, plan.file.fit, keep_checkpoints).fit(), spec, folder, mlflow
    )
    return finish_sweep(spec, folder, meta, mlflow, echo, seconds)


def run_sweep(
    spec_path: Path,
    *,
    storage: str | Path,
    name: str | None = None,
    num_samples: int | None = None,
    max_concurrent: int | None = None,
    address: str | None = None,
    shared_storage: bool = False,
    mlflow_uri: str | None = None,
    experiment: str | None = None,
    robust_top: int | None = None,
    seeds: int | None = None,
    keep_checkpoints: bool = False,
    echo: Echo = print,
    fit: Fit | None = None,
    overrides: Sequence[Override] = (),
) -> SweepOutcome:
    """`plan_sweep` then `start_sweep`: a whole sweep in one call."""
    plan = plan_sweep(
        spec_path,
        storage=storage,
        name=name,
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        mlflow_uri=mlflow_uri,
        experiment=experiment,
        robust_top=robust_top,
        seeds=seeds,
        fit=fit,
        overrides=overrides,
    )
    return start_sweep(
        plan,
        address=address,
        shared_storage=shared_storage,
        keep_checkpoints=keep_checkpoints,
        echo=echo,
    )


def _copy_spec(source: Path, dest: Path, data: dict[str, Any], overrides: Sequence[Override]) -> None:
    """The sweep file as run (what `resume` reads): verbatim, or, with command-line overrides or
    a training function given as an object, as resolved."""
    if not overrides and data == parse_yaml(source):
        shutil.copyfile(source, dest)
        return
    dest.write_text(yaml.safe_dump(data, sort_keys=False))


def resume_sweep(
    path: Path,
    *,
    address: str | None = None,
    shared_storage: bool = False,
    echo: Echo = print,
    fit: Fit | None = None,
) -> SweepOutcome:
    """Continue an interrupted sweep: its unfinished trials from their checkpoints, the rest of
    its budget of trials, then the export. `fit`: the training function, for a sweep started
    with one given as an object that cannot be imported by name (defined in a notebook)."""
    folder = SweepFolder.at(path)
    if not folder.is_sweep():
        raise UserError(f"{folder.path} is not a sweep folder (no {SweepFolder.META}); give STORAGE/NAME of a sweep.")
    _check_resumable(folder, fit)  # before the lock, which writes: damaged files change nothing
    with driver_lock(folder.path, "resume"):
        return _resume_locked(folder, address, shared_storage, echo, fit)


def _check_resumable(folder: SweepFolder, fit: Fit | None) -> tuple[dict[str, Any], SweepSpec, Ledger]:
    """The sweep's metadata, file and ledger, read and checked (a damaged one is named)."""
    meta = folder.checked_meta()
    spec = load_sweep(folder.spec_file)
    if fit is not None:
        check_fit(fit, "the function given to tuning.resume")
    elif spec.trainable is not None:
        load_fit(spec.trainable.name, str(folder.spec_file))
    return meta, spec, Ledger(folder.ledger_file)


def _resume_locked(
    folder: SweepFolder, address: str | None, shared_storage: bool, echo: Echo, fit: Fit | None
) -> SweepOutcome:
    """`resume_sweep`'s work, once this process holds the folder's lock."""
    path = folder.path
    meta, spec, ledger = _check_resumable(folder, fit)  # as the previous driver left them
    counts = ledger.counts()
    tune_trials = tune_trial_ids(folder.tune_experiment, echo)  # a state cut short by the kill is set aside
    check_tracking_uri(meta["mlflow_uri"])
    check_ray_address(address)
    left = leftovers(path)
    if left:
        echo(
            f"{len(left)} Ray process(es) of this sweep's previous local session are still running: "
            + ", ".join(f"{pid} ({name})" for pid, name in left)
            + f". They hold memory and ports; stop them with: kill {' '.join(str(pid) for pid, _ in left)}"
        )
    connect(address, local_sources(spec.plugin_names))
    check_cluster(spec, folder.tune_storage, address, shared_storage)
    if address is None:
        record_ray_processes(path)
    mlflow = MlflowSweep(meta["mlflow_uri"], meta["experiment_id"], meta["parent_run_id"])
    mlflow.reopen(mlflow.parent_run_id)
    lost = drop_lost_trials(folder, mlflow, tune_trials)
    end_unrecorded_runs(folder, mlflow)
    echo(f"resuming {path}: {counts} so far")
    if lost:
        echo(f"  {len(lost)} trial(s) started as the driver was killed and were never recorded by Tune: dropped")
    if restorable(folder.tune_experiment):
        tuner = tune.Tuner.restore(
            folder.tune_experiment,
            trainable=make_trainable(spec, folder, fit, ended_results(folder, ledger)),
            resume_unfinished=True,
        )
    else:  # the driver was killed before Tune first saved its state: start Tune afresh
        if spec.search.warm_start:  # told once: a kill may have come before it
            tell_warm_start(spec, folder.study_url, folder.name, warm_start(spec, check_warm_start(spec, str(path))))
        tuner = make_tuner(spec, folder, mlflow, fit, bool(meta.get("keep_checkpoints")))
    seconds = _fit(tuner.fit, spec, folder, mlflow)
    return finish_sweep(spec, folder, meta, mlflow, echo, seconds)


def _fit(run: Callable[[], ResultGrid], spec: SweepSpec, folder: SweepFolder, mlflow: MlflowSweep) -> float:
    """Run the Tuner, and say for how many seconds (what it ran is in the ledger); if it dies (a
    second Ctrl-C, a crash in Tune), close the MLflow runs it leaves open before the error goes
    on, so nothing stays RUNNING until `resume`."""
    retry_lost_processes_only()  # max_failures: retries of a lost process, not of code that raised
    started = time.monotonic()
    try:
        with tune_environment():
            run()
            return time.monotonic() - started
    except BaseException:
        TrialRecorder(folder.ledger_file, spec.budget, mlflow).close_unfinished()
        mlflow.end(mlflow.parent_run_id, "KILLED")
        raise
