"""What the export reads from a pruned sweep: the checkpoint the chosen trial's record names,
which is the one retention keeps, whatever Tune last knew of it."""

from pathlib import Path

from tuning.records.folder import SweepFolder
from tuning.records.ledger import TrialRecord
from tuning.sweep.retention import kept_checkpoint


def test_the_record_names_the_checkpoint_the_export_reads(tmp_path: Path):
    folder = SweepFolder(tmp_path, str(tmp_path))
    trial = Path(folder.tune_experiment) / folder.trial_folder("a")
    (trial / "checkpoint_000002").mkdir(parents=True)  # checkpoint_000001, Tune's latest on a replay, pruned

    kept = kept_checkpoint(folder, TrialRecord("a", {}, checkpoint="checkpoint_000002"))

    assert kept is not None and Path(kept.path) == trial / "checkpoint_000002"
    assert kept_checkpoint(folder, TrialRecord("a", {}, checkpoint="checkpoint_000001")) is None  # gone: not evaluated
    assert kept_checkpoint(folder, TrialRecord("a", {})) is None  # a trial that never saved one
