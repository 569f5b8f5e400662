"""What a new user meets, through the installed `fishleg-tune` from the folder a user would be
in: a config tuned for FishLeg run with AdamW says so first and briefly; a training function
imported from the wrong folder names the folder; `list` shows the good sweeps beside a damaged
one (or another tool's folder) and names the bad entry; `best` on a sweep stopped before its
end says `resume`. None needs Ray: each answers from the files."""

import json

import yaml

from fishleg.config import FishLegConfig
from tests.conftest import fishleg_tune
from tuning.records.ledger import TrialRecord

SPACE = {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}}
META = {
    "name": "x",
    "sweep_file": "x.yaml",
    "sweep_file_sha256": "0" * 64,
    "tune_storage": ".",
    "mlflow_uri": "sqlite:///x.db",
    "experiment_id": "1",
    "parent_run_id": "r",
    "created": "2026-12-06T00:00:00+00:00",
}


def sweep_folder(storage, name, statuses=("COMPLETE",), exported=True):
    """A sweep folder as a sweep leaves it: metadata, the file as run, the ledger, the export."""
    folder = storage / name
    folder.mkdir(parents=True)
    spec = {"workload": {"name": "digits_classifier"}, "training": {"epochs": 2}, "space": SPACE}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))
    (folder / "sweep.json").write_text(json.dumps({**META, "name": name}))
    rows = [
        TrialRecord(f"t{i}", {"optimizer.lr": 0.1}, status, 2, [{"epoch": 2, "val_loss": 0.5 + i}]).__dict__
        for i, status in enumerate(statuses)
    ]
    (folder / "trials.json").write_text(json.dumps(rows))
    if exported:
        (folder / "best_config.yaml").write_text(yaml.safe_dump({"workload": {"name": "digits_classifier"}}))
    return folder


def one_paragraph(text):
    return text.strip() and "Traceback" not in text and "\n\n" not in text.strip()


def test_a_fishleg_config_run_with_adamw_gives_the_advice_first_and_briefly(tmp_path):
    best = tmp_path / "best_config.yaml"
    optimizer = {"name": "fishleg", **FishLegConfig().model_dump(mode="json")}  # as an export holds it
    best.write_text(yaml.safe_dump({"workload": {"name": "digits_classifier"}, "optimizer": optimizer}))
    done = fishleg_tune("train", "best_config.yaml", "optimizer.name=adamw", cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and one_paragraph(done.stderr), done.stderr
    message = " ".join(done.stderr.split())
    assert message.index("this config was tuned for fishleg, not adamw") < 120  # first, after the file's name
    assert "Tune adamw with its own sweep" in message and "unknown key" not in message
    assert len(message) < 600 and "more)" in message  # the keys summed up, not listed twice


def test_a_training_function_run_from_the_wrong_folder_names_the_folder(tmp_path):
    project = tmp_path / "myproject"
    (project / "mypl").mkdir(parents=True)
    (project / "mypl" / "__init__.py").write_text("")
    (project / "mypl" / "train.py").write_text("def fit(config, context):\n    pass\n")
    sweep = project / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"trainable": "mypl.train:fit", "training": {"epochs": 1}, "space": SPACE}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = fishleg_tune("search", str(sweep), "--dry-run", cwd=elsewhere, timeout=120)
    assert done.returncode == 2 and one_paragraph(done.stderr), done.stderr
    message = " ".join(done.stderr.split())
    assert "No module named 'mypl'" in message
    assert f"from the folder the command runs in ({elsewhere})" in message and "holds mypl/" in message
    assert fishleg_tune("search", "sweep.yaml", "--dry-run", cwd=project, timeout=120).returncode == 0


def test_list_shows_the_good_sweeps_and_names_a_damaged_one_and_another_tools_folder(tmp_path):
    storage = tmp_path / "fishleg-runs"
    sweep_folder(storage, "alpha")
    (sweep_folder(storage, "broken") / "sweep.json").write_text('{"name": "broken", "sweep_fi')  # cut short
    sweep_folder(storage, "zeta")
    other = storage / "other_tool"
    other.mkdir()
    (other / "sweep.json").write_text(json.dumps({"sweep": "theirs"}))
    (other / "trials.json").write_text(json.dumps({"trials": [1, 2]}))
    done = fishleg_tune("list", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for good in ("alpha", "zeta"):
        assert any(good in line and "done" in line and "val_loss 0.5" in line for line in out.splitlines()), out
    assert "broken/sweep.json: cannot read the sweep's metadata" in out.replace("\n", "")
    flat = " ".join(out.split())
    assert "other_tool/sweep.json: the sweep's metadata lacks" in flat and "not a fishleg-tune sweep" in flat
    assert "TypeError" not in out and "Traceback" not in done.stderr


def test_best_on_a_sweep_stopped_before_its_end_says_resume(tmp_path):
    storage = tmp_path / "fishleg-runs"
    stopped = sweep_folder(storage, "stopped", statuses=("COMPLETE", "INTERRUPTED"))
    done = fishleg_tune("best", "fishleg-runs/stopped", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "unfinished: the sweep was stopped before its end" in done.stdout
    assert f"fishleg-tune resume {stopped}" in " ".join(done.stdout.split())

    finished = sweep_folder(storage, "finished", statuses=("COMPLETE", "PRUNED"))
    assert "resume" not in fishleg_tune("best", str(finished), cwd=tmp_path, timeout=120).stdout

    (stopped / "trials.json").unlink()  # killed before its first trial was recorded
    done = fishleg_tune("best", str(stopped), cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "has recorded no trial yet" in done.stderr
    assert f"fishleg-tune resume {stopped}" in " ".join(done.stderr.split())
