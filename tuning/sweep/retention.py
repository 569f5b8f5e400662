"""Which checkpoints a sweep keeps: what `resume` and the export need, not every trial's.

FishLeg's state (λ and its Adam moments) is several times a model's, so per-trial checkpoints
would fill the disk: a 12-trial digits sweep kept 464 MB of them. While a trial runs, Tune
keeps its newest two (the older one is what a killed driver's last saved experiment state
may still name). Once a trial has ended and Tune has saved the state that records it, its
checkpoints are deleted, except the last one of the trial the export currently chooses
(`ledger.select_best`; an ended trial's record never changes, so a trial that
is not chosen when it is deleted is never chosen later). `--keep-checkpoints` keeps them all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs
from ray import tune
from typing_extensions import override

from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger, TrialRecord, select_best

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["CheckpointRetention", "folder_size", "kept_checkpoint", "prune_checkpoints"]

SAVED_AFTER_STEPS = 2  # Tune's state is written each step and uploaded in the background


def _filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if "://" in uri:
        return pyarrow.fs.FileSystem.from_uri(uri)
    return pyarrow.fs.LocalFileSystem(), str(Path(uri).resolve())


def prune_checkpoints(folder: SweepFolder, trial_ids: list[str], metric: str, mode: str, budget: int) -> None:
    """Delete the checkpoints of the ended trials `trial_ids`, but the chosen trial's last."""
    ledger = Ledger(folder.ledger_file)
    best = select_best(list(ledger.records.values()), metric, mode, budget)
    fs, root = _filesystem(folder.tune_experiment)
    for trial_id in trial_ids:
        keep = best.record.checkpoint if best is not None and best.record.trial_id == trial_id else None
        selector = pyarrow.fs.FileSelector(f"{root}/{folder.trial_folder(trial_id)}", allow_not_found=True)
        for info in fs.get_file_info(selector):
            if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                if info.base_name != keep:
                    fs.delete_dir(info.path)


def kept_checkpoint(folder: SweepFolder, record: TrialRecord) -> tune.Checkpoint | None:
    """A trial's last checkpoint as its record names it (the one `prune_checkpoints` keeps for
    the chosen trial), or None if it has none or it is gone. Not Tune's latest: a trial whose
    end was replayed on resume may be known to Tune by an earlier checkpoint, since pruned."""
    if record.checkpoint is None:
        return None
    fs, path = _filesystem(folder.trial_checkpoint(record.trial_id, record.checkpoint))
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return None
    return tune.Checkpoint(path, filesystem=fs)


def folder_size(path: Path) -> int:
    """Bytes in the files under `path`."""
    return sum((Path(root) / name).stat().st_size for root, _, names in os.walk(path) for name in names)


class CheckpointRetention(tune.Callback):
    """Prunes each completed trial's checkpoints (see the module docstring) `SAVED_AFTER_STEPS`
    controller steps after it ended, so Tune's saved state on disk records the end first. A
    trial that Tune's state on disk still shows running when the driver is killed replays its
    recorded end on resume, without its checkpoint (`trainable.replay`). Failed trials keep
    theirs until the sweep ends."""

    def __init__(self, folder: SweepFolder, metric: str, mode: str, budget: int) -> None:
        self.folder = folder
        self.metric, self.mode, self.budget = metric, mode, budget
        self.pending: dict[str, int] = {}

    @override
    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.pending[trial.trial_id] = iteration

    @override
    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        due = [t for t, ended in self.pending.items() if iteration >= ended + SAVED_AFTER_STEPS]
        if not due:
            return
        prune_checkpoints(self.folder, due, self.metric, self.mode, self.budget)
        for trial_id in due:
            del self.pending[trial_id]
