"""The Python API, for notebooks and scripts: the same sweeps and runs as the command line
(`search` is `fishleg-tune search`, `resume` is `fishleg-tune resume`, `train` is
`fishleg-tune train`), with the training function given as an object.

    import tuning
    outcome = tuning.search(fit, "sweep.yaml", num_samples=20)
    outcome.best.value, outcome.best_file, outcome.trials()  # a pandas DataFrame
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuning.driver import Echo, SweepOutcome, resume_sweep, run_sweep
from tuning.run.config import load_run_config
from tuning.run.fit import Fit, check_fit, function_name
from tuning.run.overrides import Override
from tuning.sweep.cluster import resolve_address
from tuning.training import TrainResult, train_to_folder

__all__ = ["resume", "search", "train"]


def search(
    fit: Fit | None,
    sweep: str | Path,
    *,
    storage: str | Path = "fishleg-runs",
    address: str | None = None,
    echo: Echo = print,
    **options: Any,
) -> SweepOutcome:
    """Run the sweep file `sweep` on `fit` (None: the file's `workload:` or `trainable:`) and
    export its best config. `options` are `fishleg-tune search`'s options by their Python names
    (name, num_samples, max_concurrent, mlflow_uri, experiment, robust_top, seeds,
    shared_storage, keep_checkpoints) and, as on the command line, dotted keys of the file
    (`**{"training.epochs": 2}`). `fit` may be defined anywhere, a notebook included: it is
    pickled to the trials, not imported by name."""
    dotted = {key: options.pop(key) for key in [k for k in options if "." in k]}
    overrides = [Override(key, value, f"{key}={value!r}") for key, value in dotted.items()]
    where = {"storage": storage, "address": resolve_address(address)}
    return run_sweep(Path(sweep), **where, echo=echo, fit=fit, overrides=overrides, **options)


def resume(
    folder: str | Path, fit: Fit | None = None, *, address: str | None = None, echo: Echo = print
) -> SweepOutcome:
    """Continue an interrupted sweep (`fishleg-tune resume`); give `fit` again if it cannot be
    imported by the name the sweep recorded (e.g. it was defined in a notebook)."""
    return resume_sweep(Path(folder), address=resolve_address(address), echo=echo, fit=fit)


def train(
    fit: Fit | None,
    config: str | Path,
    output: str | Path,
    *,
    resume: bool = False,
    mlflow_uri: str | None = None,
    echo: Echo = print,
) -> TrainResult:
    """Train one run config (an exported best config, for instance) with `fit` (None: the
    file's), as `fishleg-tune train` does: metrics.jsonl and checkpoint.pt in `output`."""
    path = Path(config)
    if fit is not None:
        check_fit(fit, "the function given to tuning.train")
    run = load_run_config(path, None if fit is None else function_name(fit))
    return train_to_folder(
        run, Path(output), fit=fit, source=str(path), resume=resume, mlflow_uri=mlflow_uri, echo=echo
    )
