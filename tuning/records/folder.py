"""A sweep's folder: everything a sweep needs to resume, report or export lives there.

STORAGE/NAME holds the sweep file as run (sweep.yaml), its metadata (sweep.json), the Optuna
study (optuna.db), the trial ledger (trials.json), the default MLflow store (mlflow.db),
best_config.yaml and, in tune/, Tune's experiment state and trial checkpoints. Tune gets a
subfolder of its own because a restored experiment syncs its folder back from a staging
copy, which would overwrite anything else written there meanwhile."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning.errors import UserError
from tuning.records.files import write_atomically
from tuning.records.tracking import default_tracking_uri

__all__ = ["SweepFolder", "check_name", "read_meta"]


def check_name(name: str, where: str) -> None:
    """A sweep name is one folder name under the storage path: no separator, not '.' or '..'."""
    if len(name.encode()) > 255:  # the longest file name file systems take
        raise UserError(
            f"{where}: a sweep name of {len(name)} characters is too long for a folder name; use 255 or fewer."
        )
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UserError(
            f"{where} {name!r}: a sweep name is one folder name (letters, digits, '-', '_', '.'; no '/', "
            "not '..'), since results go to STORAGE/NAME; choose the storage folder with --storage-path."
        )


def read_meta(path: Path) -> dict[str, Any]:
    """A sweep's metadata file, or a UserError naming it if it is unreadable or not a mapping."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the sweep's metadata ({exc}); the file is damaged.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the sweep's metadata is not a JSON object; the file is damaged.")
    return data


@dataclass(frozen=True)
class SweepFolder:
    """The driver's folder of one sweep (`path`) and where Tune keeps its part (`tune_storage`:
    the same folder, or a URI every node reaches)."""

    path: Path
    tune_storage: str

    SPEC = "sweep.yaml"
    META = "sweep.json"
    META_KEYS = (  # what every sweep's metadata holds
        "name",
        "sweep_file",
        "sweep_file_sha256",
        "tune_storage",
        "mlflow_uri",
        "experiment_id",
        "parent_run_id",
    )
    LEDGER = "trials.json"
    BEST = "best_config.yaml"
    STUDY = "optuna.db"
    TUNE = "tune"
    ERRORS = "errors"

    @classmethod
    def locate(cls, storage: str, name: str) -> SweepFolder:
        """Where sweep `name` lives under STORAGE. A local STORAGE holds both parts
        (STORAGE/NAME and STORAGE/NAME/tune). A URI (s3://, gs://, file://) holds Tune's part,
        which every node must reach, at URI/NAME/tune; the driver's own files (ledger, study,
        MLflow sqlite) then live in ./fishleg-runs/NAME."""
        if "://" in storage:
            return cls((Path("fishleg-runs") / name).resolve(), f"{storage.rstrip('/')}/{name}")
        folder = (Path(storage) / name).resolve()
        return cls(folder, str(folder))

    IN_FOLDER = "."  # sweep.json's word for "in this folder": a copied or moved folder stays whole

    @classmethod
    def at(cls, path: Path) -> SweepFolder:
        """The sweep folder at `path`, with Tune's part where its metadata says (else beside it)."""
        path = path.resolve()
        meta = read_meta(path / cls.META) if (path / cls.META).exists() else {}
        tune_storage = str(meta.get("tune_storage", cls.IN_FOLDER))
        return cls(path, str(path) if tune_storage == cls.IN_FOLDER else tune_storage)

    @property
    def default_mlflow_uri(self) -> str:
        """The sqlite store a sweep keeps in its folder unless given another."""
        return default_tracking_uri(self.path)

    def _in_folder(self) -> dict[str, str]:
        """The metadata entries sweep.json records as IN_FOLDER when they have these values."""
        return {"tune_storage": str(self.path), "mlflow_uri": self.default_mlflow_uri}

    def write_meta(self, meta: dict[str, Any]) -> None:
        """sweep.json, atomically, with Tune's folder and the MLflow store recorded relative to
        the sweep folder when they are in it, so the folder can be copied or moved."""
        local = self._in_folder()
        recorded = {k: self.IN_FOLDER if local.get(k) == v else v for k, v in meta.items()}
        write_atomically(self.meta_file, json.dumps(recorded, indent=1))

    def checked_meta(self) -> dict[str, Any]:
        """`meta`, refused with its file named when it lacks what this toolkit writes (a
        damaged file, or another tool's folder)."""
        meta = self.meta()
        missing = [k for k in self.META_KEYS if not isinstance(meta.get(k), str)]
        if missing:
            raise UserError(
                f"{self.meta_file}: the sweep's metadata lacks {missing}; the file is damaged, or the folder is "
                "not a fishleg-tune sweep."
            )
        return meta

    def meta(self) -> dict[str, Any]:
        """sweep.json as `write_meta` was given it (paths resolved against where the folder is now)."""
        local = self._in_folder()
        return {k: local[k] if k in local and v == self.IN_FOLDER else v for k, v in read_meta(self.meta_file).items()}

    @property
    def name(self) -> str:
        """The sweep's name (and its Optuna study's)."""
        return self.path.name

    @property
    def spec_file(self) -> Path:
        """The sweep file as run: what `resume` reads."""
        return self.path / self.SPEC

    @property
    def meta_file(self) -> Path:
        """Metadata written when the sweep starts (sweep-file hash, MLflow ids, Tune storage)."""
        return self.path / self.META

    @property
    def ledger_file(self) -> Path:
        """The trial ledger (`ledger.Ledger`)."""
        return self.path / self.LEDGER

    @property
    def best_file(self) -> Path:
        """The exported best config."""
        return self.path / self.BEST

    @property
    def study_file(self) -> Path:
        """The Optuna study's sqlite file."""
        return self.path / self.STUDY

    @property
    def study_url(self) -> str:
        """Where the sweep's Optuna study persists (what `resume` and `report` load)."""
        return f"sqlite:///{self.study_file}"

    @property
    def tune_experiment(self) -> str:
        """Tune's experiment folder (or URI): what `Tuner.restore` reads."""
        return f"{self.tune_storage.rstrip('/')}/{self.TUNE}"

    @staticmethod
    def trial_folder(trial_id: str) -> str:
        """A trial's folder name in Tune's experiment folder: short and stable (Tune's default
        spells out every parameter)."""
        return f"trial_{trial_id}"

    def error_file(self, trial_id: str) -> Path:
        """A failed trial's full traceback, as its last attempt raised it."""
        return self.path / self.ERRORS / f"{trial_id}.txt"

    def trial_checkpoint(self, trial_id: str, name: str) -> str:
        """The path (or URI) of the checkpoint folder `name` of trial `trial_id`."""
        return f"{self.tune_experiment}/{self.trial_folder(trial_id)}/{name}"

    def is_sweep(self) -> bool:
        """Whether a sweep was started here (its metadata exists)."""
        return self.meta_file.exists()
