"""A sweep: Ray Tune Tuner + OptunaSearch (define-by-run) + a scheduler, tracked in MLflow.

Everything a sweep needs to resume lives in its folder STORAGE/NAME: the sweep file
(sweep.yaml), its metadata (sweep.json), the Optuna study (optuna.db), the trial ledger
(trials.json), the default MLflow store (mlflow.db), best_config.yaml and, in tune/, Tune's
experiment state and trial checkpoints. Tune gets a subfolder of its own because a
restored experiment syncs its folder back from a staging copy, which would overwrite
anything else written there meanwhile."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
import yaml
from ray import tune
from ray.tune import ResultGrid
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tuning.cluster import check_fits, check_shared_storage, check_versions, nodes
from tuning.config import load_run_config
from tuning.errors import ConfigError, UserError
from tuning.export import Best, rank_trials, select_best, write_best_config
from tuning.holdout import test_checkpoint
from tuning.progress import ProgressPrinter
from tuning.robust import SeedRuns, retrain_trials, test_seed_runs
from tuning.space import DefineByRun, apply_params, make_sampler, validate_space
from tuning.spec import SweepSpec, file_sha256, load_sweep
from tuning.tracking import MlflowSweep, check_tracking_uri, default_tracking_uri, experiment_id, flatten
from tuning.trainable import CHECKPOINT_FILE, DIVERGED, run_trial
from tuning.trials import Ledger, TrialRecord, TrialRecorder
from tuning.workloads.base import validate_workload, workload_metrics

__all__ = ["SweepOutcome", "plan", "preflight", "resume_sweep", "run_sweep", "study_url"]

SPEC_FILE, META_FILE, LEDGER_FILE, BEST_FILE, STUDY_FILE, TUNE_DIR = (
    "sweep.yaml",
    "sweep.json",
    "trials.json",
    "best_config.yaml",
    "optuna.db",
    "tune",
)
Echo = Callable[[str], None]


class BudgetAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED (not COMPLETE with a truncated value) for
    trials the scheduler stopped before the budget, and COMPLETE with the worst-case value of
    `trainable.diverged_report` (user attribute `diverged`) for trials that diverged."""

    def __init__(self, *args: Any, budget: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or error or not result:
            super().on_trial_complete(trial_id, result, error)
            return
        if DIVERGED in result:
            self._ot_trials[trial_id].set_user_attr(DIVERGED, result[DIVERGED])
            super().on_trial_complete(trial_id, result, error)
            return
        if result.get("epoch", 0) >= self.budget:
            super().on_trial_complete(trial_id, result, error)
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def make_scheduler(spec: SweepSpec) -> TrialScheduler:
    s, metric, mode = spec.scheduler, spec.metric.name, spec.metric.mode
    common = {"time_attr": "training_iteration", "metric": metric, "mode": mode}
    if s.type == "asha":
        return ASHAScheduler(
            max_t=spec.budget, grace_period=s.grace_period, reduction_factor=s.reduction_factor, **common
        )
    if s.type == "hyperband":
        return HyperBandScheduler(max_t=spec.budget, reduction_factor=s.reduction_factor, **common)
    if s.type == "median":
        return MedianStoppingRule(grace_period=s.grace_period, min_samples_required=3, **common)
    return FIFOScheduler()


# ------------------------------------------------------------------------------ preflight
def check_storage(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"--storage-path: cannot write to {folder} ({exc.strerror}); choose a writable folder."
        ) from None


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


def preflight(spec: SweepSpec, source: str) -> None:
    """Every check that needs no cluster: the config, the space, the metric, the sampler."""
    validate_workload(spec.workload, source)
    metrics = workload_metrics(spec.workload, source)
    if metrics is not None and spec.metric.name not in metrics:
        raise ConfigError(
            f"{source}: metric.name: {spec.metric.name!r} is not reported by workload "
            f"{spec.workload.name!r}; allowed: {list(metrics)}."
        )
    validate_space(spec, source)
    make_sampler(spec, source)


def plan(spec: SweepSpec, folder: Path, mlflow_uri: str) -> str:
    lines = [
        f"sweep {folder.name}: {spec.search.num_samples} trials of {spec.workload.name} "
        f"with {spec.optimizer.name}, {spec.budget} epochs each at most"
    ]
    lines.append(f"  metric     {spec.metric.name} ({spec.metric.mode})")
    lines.append(
        f"  sampler    {spec.search.sampler} (seed {spec.search.seed}), "
        f"{spec.search.max_concurrent} at a time, {len(spec.search.points_to_evaluate)} given points first"
    )
    sched = spec.scheduler
    lines.append(f"  scheduler  {sched.type} (grace {sched.grace_period} epochs, reduction {sched.reduction_factor:g})")
    lines.append(f"  resources  {spec.resources.cpu:g} CPU, {spec.resources.gpu:g} GPU per trial")
    lines.append("  space")
    for name, p in spec.space.items():
        rng = f"{p.choices}" if p.type == "categorical" else f"[{p.low:g}, {p.high:g}]" + (" log" if p.log else "")
        cond = f"  when {p.when}" if p.when else ""
        lines.append(f"    {name:<32} {p.type:<12} {rng}{cond}")
    lines.append(f"  results    {folder}")
    lines.append(f"  MLflow     {mlflow_uri}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ running
def connect(address: str | None) -> None:
    if ray.is_initialized():
        return
    # Tune's own reporter is replaced by ProgressPrinter; per-epoch checkpoints of fast
    # trials would otherwise flood the log with snapshot-frequency warnings.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The ledger and MLflow record every result; Tune's CSV and TensorBoard writers would
    # repeat that on the driver while the trial waits for its next `train` call. Its JSON
    # writer stays (see _tuner): Tune's ResultGrid reads result.json.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    ray.init(
        address=address,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}},
    )


def trial_dirname(trial: Any) -> str:
    """Short, stable trial folder names (Tune's default spells out every parameter)."""
    return f"trial_{trial.trial_id}"


def _trainable(spec: SweepSpec) -> Any:
    fn = tune.with_parameters(run_trial, base=spec.base_config())
    return tune.with_resources(fn, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def study_url(folder: Path) -> str:
    """Where the sweep's Optuna study persists (what `resume` and `report` load)."""
    return f"sqlite:///{folder / STUDY_FILE}"


def _tuner(spec: SweepSpec, folder: Path, tune_storage: str, mlflow: MlflowSweep) -> tune.Tuner:
    searcher = BudgetAwareOptunaSearch(
        space=DefineByRun(spec.space),
        metric=spec.metric.name,
        mode=spec.metric.mode,
        sampler=make_sampler(spec),
        storage=optuna.storages.RDBStorage(study_url(folder)),
        study_name=folder.name,
        points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
        budget=spec.budget,
    )
    callbacks = [
        TrialRecorder(folder / LEDGER_FILE, spec.budget, mlflow),
        ProgressPrinter(spec.metric.name, spec.budget, spec.search.num_samples),
        JsonLoggerCallback(),
    ]
    return tune.Tuner(
        _trainable(spec),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.search.max_concurrent),
            scheduler=make_scheduler(spec),
            num_samples=spec.search.num_samples,
            trial_dirname_creator=trial_dirname,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=tune_storage,
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
            verbose=0,
        ),
    )


@dataclass
class SweepOutcome:
    """What a sweep ended with. `test`: the exported config's test metrics, evaluated once
    after the choice (None while the sweep is unfinished)."""

    folder: Path
    counts: dict[str, int]
    best: Best | None
    interrupted: bool
    mlflow_uri: str
    metric: str
    exit_code: int
    test: dict[str, float] | None = None


def sweep_locations(storage: str, name: str) -> tuple[Path, str]:
    """(the driver's sweep folder, where Tune keeps experiment state and checkpoints).

    A local STORAGE holds both (STORAGE/NAME and STORAGE/NAME/tune). A URI (s3://, gs://,
    file://) holds Tune's part, which every node must reach, at URI/NAME/tune; the driver's
    own files (ledger, studies, MLflow sqlite) then live in ./fishleg-runs/NAME."""
    if "://" in storage:
        return (Path("fishleg-runs") / name).resolve(), f"{storage.rstrip('/')}/{name}"
    folder = (Path(storage) / name).resolve()
    return folder, str(folder)


def cluster_preflight(spec: SweepSpec, storage: str, address: str | None, shared_storage: bool) -> None:
    """Checks that need the cluster: one trial fits on a node, storage is reachable from every
    node, and (on an existing cluster) the workers run the driver's package versions."""
    cluster = nodes()
    check_fits(cluster, spec.resources.cpu, spec.resources.gpu)
    check_shared_storage(storage, cluster, shared_storage)
    if address is not None:
        check_versions(cluster)


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
    dry_run: bool = False,
    robust_top: int = 0,
    seeds: int = 3,
    echo: Echo = print,
) -> SweepOutcome | None:
    spec = load_sweep(spec_path)
    search_updates = {k: v for k, v in (("num_samples", num_samples), ("max_concurrent", max_concurrent)) if v}
    if search_updates:
        spec = spec.model_copy(update={"search": spec.search.model_copy(update=search_updates)})
    name = name or spec.name or spec_path.stem
    storage = str(storage)
    folder, tune_storage = sweep_locations(storage, name)
    preflight(spec, str(spec_path))
    uri = mlflow_uri or spec.mlflow.tracking_uri or default_tracking_uri(folder)
    check_tracking_uri(uri)
    if dry_run:
        echo(plan(spec, folder, uri))
        return None
    check_ray_address(address)
    if (folder / META_FILE).exists():
        raise UserError(
            f"{folder} already holds a sweep; continue it with `fishleg-tune resume {folder}` or choose another --name."
        )
    check_storage(folder)
    _copy_spec(spec_path, folder / SPEC_FILE, search_updates)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # MLflow's store set-up (schema migrations on a new sqlite file) overlaps Ray's start-up.
        parent = pool.submit(_start_parent, uri, experiment or spec.mlflow.experiment or name, name, spec, folder)
        try:
            connect(address)
            cluster_preflight(spec, storage, address, shared_storage)
        except BaseException:
            _abandon(parent)
            raise
        mlflow = parent.result()
    meta = {
        "name": name,
        "sweep_file": str(spec_path.resolve()),
        "sweep_file_sha256": file_sha256(spec_path),
        "tune_storage": tune_storage,
        "mlflow_uri": uri,
        "experiment_id": mlflow.experiment_id,
        "parent_run_id": mlflow.parent_run_id,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    echo(plan(spec, folder, uri))
    results = _fit(lambda: _tuner(spec, folder, tune_storage, mlflow).fit(), spec, folder, mlflow)
    return _finish(spec, folder, meta, mlflow, echo, results, robust_top, seeds)


def _copy_spec(source: Path, dest: Path, search_updates: dict[str, Any]) -> None:
    """The sweep file as run (what `resume` reads): verbatim, or with the command-line
    overrides written into its `search:` block."""
    if not search_updates:
        shutil.copyfile(source, dest)
        return
    data = yaml.safe_load(source.read_text())
    data.setdefault("search", {}).update(search_updates)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))


def _start_parent(uri: str, experiment: str, name: str, spec: SweepSpec, folder: Path) -> MlflowSweep:
    probe = MlflowSweep(uri, "", "")
    local_store = uri.startswith("sqlite:")
    exp_id = experiment_id(probe.client, experiment, folder / "mlartifacts" if local_store else None)
    parent = probe.create_run(exp_id, name, {"fishleg_tune.sweep_folder": str(folder)})
    sweep = MlflowSweep(uri, exp_id, parent)
    params = flatten({k: v for k, v in spec.model_dump(mode="json").items() if k != "space"})
    params.update({f"space.{k}": json.dumps(v.model_dump(exclude_none=True)) for k, v in spec.space.items()})
    sweep.log_params(parent, params)
    sweep.client.log_artifact(parent, str(folder / SPEC_FILE))
    return sweep


def _abandon(parent: Future[MlflowSweep]) -> None:
    """The sweep did not start: mark its parent run FAILED rather than leave it RUNNING."""
    try:
        sweep = parent.result()
    except Exception:  # the run was never created; the error that stopped the sweep is the one to show
        return
    sweep.end(sweep.parent_run_id, "FAILED")


def resume_sweep(
    folder: Path, *, address: str | None = None, shared_storage: bool = False, echo: Echo = print
) -> SweepOutcome:
    folder = folder.resolve()
    if not (folder / META_FILE).exists():
        raise UserError(f"{folder} is not a sweep folder (no {META_FILE}); give STORAGE/NAME of a sweep.")
    meta = json.loads((folder / META_FILE).read_text())
    spec = load_sweep(folder / SPEC_FILE)
    check_tracking_uri(meta["mlflow_uri"])
    check_ray_address(address)
    connect(address)
    cluster_preflight(spec, meta["tune_storage"], address, shared_storage)
    mlflow = MlflowSweep(meta["mlflow_uri"], meta["experiment_id"], meta["parent_run_id"])
    mlflow.reopen(mlflow.parent_run_id)
    echo(f"resuming {folder}: {Ledger(folder / LEDGER_FILE).counts()} so far")
    experiment = f"{meta['tune_storage'].rstrip('/')}/{TUNE_DIR}"
    results = _fit(
        lambda: tune.Tuner.restore(experiment, trainable=_trainable(spec), resume_unfinished=True).fit(),
        spec,
        folder,
        mlflow,
    )
    return _finish(spec, folder, meta, mlflow, echo, results)


def _fit(run: Callable[[], ResultGrid], spec: SweepSpec, folder: Path, mlflow: MlflowSweep) -> ResultGrid:
    """Run the Tuner; if it dies (a second Ctrl-C, a crash in Tune), close the MLflow runs it
    leaves open before the error goes on, so nothing stays RUNNING until `resume`."""
    try:
        return run()
    except BaseException:
        TrialRecorder(folder / LEDGER_FILE, spec.budget, mlflow).close_unfinished()
        mlflow.end(mlflow.parent_run_id, "KILLED")
        raise


def _robust_best(
    spec: SweepSpec, records: list[TrialRecord], top: int, seeds: int, echo: Echo
) -> tuple[Best, dict[str, Any], SeedRuns] | None:
    """Re-train the top full-budget trials with fresh seeds; the best validation mean wins."""
    metric, mode = spec.metric.name, spec.metric.mode
    ranked = rank_trials(records, metric, mode, min_epochs=spec.budget)[:top]
    if not ranked:
        return None
    echo(f"re-training the top {len(ranked)} trials with {seeds} fresh seeds each")
    runs = retrain_trials(spec, ranked, seeds)
    index = min(range(len(runs)), key=lambda i: runs[i].rank_key(metric, mode))
    chosen = runs[index]
    info = {
        "seeds": chosen.seeds,
        "finals": chosen.finals(metric),
        "mean": chosen.mean(metric),
        "std": chosen.std(metric),
        "candidates": [
            {"trial_id": r.trial_id, "mean": s.mean(metric), "std": s.std(metric)} for r, s in zip(ranked, runs)
        ],
    }
    return Best(ranked[index], chosen.mean(metric), True), info, chosen


def _test_once(
    spec: SweepSpec,
    folder: Path,
    best: Best,
    seed_runs: SeedRuns | None,
    results: ResultGrid | None,
    echo: Echo,
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """(test metrics, what to add to the provenance) of the chosen config, evaluated once: on
    the chosen seed re-runs' weights, else on the chosen trial's final checkpoint. A resumed
    sweep that exports the same trial again reuses the test it already has."""
    previous = load_run_config(folder / BEST_FILE).provenance if (folder / BEST_FILE).exists() else None
    if previous and previous.get("trial_id") == best.record.trial_id and previous.get("test"):
        return previous["test"], {k: previous[k] for k in ("test_on",) if k in previous}
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    if seed_runs is not None:
        echo(f"evaluating the chosen config's {len(seed_runs.seeds)} seed re-runs on the test split (once)")
        summary = test_seed_runs(spec.base_config(), seed_runs, cpu, gpu)
        means = {k: v for k, v in summary.items() if not k.endswith(("_std", "_finals"))}
        return means or None, {"test_on": "seed re-runs (mean)", "test_seed_runs": summary}
    by_trial = {r.metrics.get("trial_id"): r for r in results or []}
    result = by_trial.get(best.record.trial_id)
    if result is None or result.checkpoint is None:
        return None, {"test_on": "not evaluated: the chosen trial's final checkpoint is not available"}
    echo(f"evaluating trial {best.record.trial_id}'s final checkpoint on the test split (once)")
    base = apply_params(spec.base_config(), best.record.params)
    metrics = test_checkpoint(base, result.checkpoint, CHECKPOINT_FILE, cpu, gpu)
    epoch = metrics.pop("epoch")
    if epoch != best.record.epochs:
        return None, {"test_on": f"not evaluated: the last checkpoint is of epoch {epoch}, not {best.record.epochs}"}
    return metrics, {"test_on": f"trial {best.record.trial_id}'s final checkpoint (epoch {epoch})"}


def _finish(
    spec: SweepSpec,
    folder: Path,
    meta: dict[str, Any],
    mlflow: MlflowSweep,
    echo: Echo,
    results: ResultGrid | None,
    robust_top: int = 0,
    seeds: int = 3,
) -> SweepOutcome:
    recorder = TrialRecorder(folder / LEDGER_FILE, spec.budget, mlflow)
    unfinished = recorder.close_unfinished()
    records = list(recorder.ledger.records.values())
    interrupted = bool(unfinished) or len(records) < spec.search.num_samples
    best = select_best(records, spec.metric.name, spec.metric.mode, spec.budget)
    robust = _robust_best(spec, records, robust_top, seeds, echo) if robust_top and not interrupted else None
    if robust is not None:
        best = robust[0]
    test: dict[str, float] | None = None
    if best is not None:
        test, test_info = (
            _test_once(spec, folder, best, None if robust is None else robust[2], results, echo)
            if not interrupted
            else (None, {"test_on": "not evaluated: the sweep is unfinished (evaluated once it ends)"})
        )
        write_best_config(
            best,
            spec.base_config(),
            folder / BEST_FILE,
            metric=spec.metric.name,
            mode=spec.metric.mode,
            budget=spec.budget,
            sweep_file=meta["sweep_file"],
            sweep_sha256=meta["sweep_file_sha256"],
            mlflow_uri=meta["mlflow_uri"],
            seed_runs=None if robust is None else robust[1],
            test=test,
            test_info=test_info,
        )
        mlflow.client.log_artifact(mlflow.parent_run_id, str(folder / BEST_FILE))
        mlflow.log_metrics(mlflow.parent_run_id, {f"best_{spec.metric.name}": best.value, **(test or {})}, step=0)
        if test is not None:
            recorder.record_test(best.record.trial_id, test)
    mlflow.end(mlflow.parent_run_id, "KILLED" if interrupted else "FINISHED")
    counts = recorder.ledger.counts()
    exit_code = 130 if interrupted else 0
    return SweepOutcome(folder, counts, best, interrupted, meta["mlflow_uri"], spec.metric.name, exit_code, test)
