"""One driver per sweep folder: a second `search` or a `resume` of a folder in use is refused
at once (exit 2, naming the holder, before Ray starts), and a SIGKILLed holder leaves no
stale lock."""

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from tests.conftest import fishleg_tune
from tests.tuning.test_bad_input import GOOD
from tuning.errors import UserError
from tuning.records.lock import LOCK_FILE, driver_lock

HOLD = (
    "import sys, time\nfrom pathlib import Path\nfrom tuning.records.lock import driver_lock\n"
    "with driver_lock(Path(sys.argv[1]), 'search'):\n    print('held', flush=True)\n    time.sleep(600)\n"
)


def hold(folder):
    """A process holding `folder`'s lock, once it says so."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def holder(tmp_path):
    """A process holding the lock of a complete sweep folder (as a running `resume` would)."""
    folder = tmp_path / "runs" / "locked"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({**GOOD, "name": "locked"}))
    meta = {k: "x" for k in ("name", "sweep_file", "sweep_file_sha256", "experiment_id", "parent_run_id")}
    (folder / "sweep.json").write_text(json.dumps({**meta, "tune_storage": ".", "mlflow_uri": "."}))
    (folder / "trials.json").write_text("[]")
    proc = hold(folder)
    yield folder, proc
    proc.kill()
    proc.wait()


def test_a_held_folder_is_refused_and_a_killed_holder_frees_it_at_once(holder):
    folder, proc = holder
    with pytest.raises(UserError, match=f"in use by another fishleg-tune driver .*PID {proc.pid} on "):
        with driver_lock(folder, "resume"):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with driver_lock(folder, "resume"):  # the kernel released it with the process: no stale lock
        assert f"PID {os.getpid()}" in (folder / LOCK_FILE).read_text()


def test_a_folder_made_for_the_lock_alone_is_removed_again(tmp_path):
    with pytest.raises(RuntimeError), driver_lock(tmp_path / "runs" / "new", "search"):
        raise RuntimeError("refused before anything was written")
    assert not (tmp_path / "runs" / "new").exists()


def test_search_and_resume_of_a_folder_in_use_exit_2_before_ray_starts(holder, tmp_path):
    folder, proc = holder
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    done = fishleg_tune("resume", str(folder), cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and f"PID {proc.pid}" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written
    # A second search of a name whose first search is starting (locked, no sweep.json yet).
    starting = tmp_path / "runs" / "starting"
    first = hold(starting)
    try:
        spec = tmp_path / "starting.yaml"
        spec.write_text(yaml.safe_dump({**GOOD, "name": "starting"}))
        done = fishleg_tune("search", str(spec), "--storage-path", str(tmp_path / "runs"), cwd=tmp_path, timeout=120)
        assert done.returncode == 2 and f"PID {first.pid}" in done.stderr, done.stderr
        assert [p.name for p in starting.iterdir()] == [LOCK_FILE]
    finally:
        first.kill()
        first.wait()


def test_a_start_interrupted_before_it_began_is_named_with_what_to_do(tmp_path):
    spec = tmp_path / "half.yaml"
    spec.write_text(yaml.safe_dump({**GOOD, "name": "half"}))
    (tmp_path / "runs" / "half").mkdir(parents=True)
    (tmp_path / "runs" / "half" / "sweep.yaml").write_text("left by an interrupted start")
    done = fishleg_tune("search", str(spec), "--storage-path", str(tmp_path / "runs"), cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "but no sweep.json" in done.stderr and "rm -r" in done.stderr, done.stderr
