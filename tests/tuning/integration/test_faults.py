"""A driver killed with SIGKILL at several points, then `resume`: the ledger, the Optuna
study, Tune's experiment state and MLflow agree afterwards, nothing completed is trained
again, nothing is duplicated, nothing stays RUNNING, and resume exits 0."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import FISHLEG_TUNE, ROOT, fishleg_tune
from tuning.records.ray_processes import descendants, stat_fields

from .conftest import gated, slow_sweep, sweep_file

pytestmark = pytest.mark.slow

TERMINAL = {"COMPLETE", "PRUNED"}


def ledger(folder):
    path = folder / "trials.json"
    try:
        return json.loads(path.read_text()) if path.exists() else []
    except ValueError:  # read while being replaced
        return []


def running(pid):
    """Alive and not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def command(pid):
    """The process's command name (/proc/PID/comm), or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def at_first_start(rows, output):
    return bool(rows) and not any(r["history"] for r in rows)


def mid_sweep(rows, output):
    return any(r["status"] in TERMINAL for r in rows) and any(r["status"] == "RUNNING" for r in rows)


def at_export(rows, output):
    return "on the test split" in output  # the sweep has ended; the export's test evaluation runs


def kill_sweep(proc: subprocess.Popen) -> None:
    """SIGKILL a sweep's driver, its process group and Ray's processes under it."""
    tree = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in tree:  # Ray's own processes, some of which leave the process group
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def resume(folder: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`fishleg-tune resume FOLDER` from `cwd` (by default the folder's parent)."""
    resumed = fishleg_tune("resume", str(folder), cwd=cwd or folder.parent, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return resumed


def collected(proc: subprocess.Popen) -> list[str]:
    """The lines `proc` prints, as they come (read on a thread)."""
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    return output


def kept(row: dict) -> dict:
    """What a resume must not change in a trial that had ended: its status and every epoch."""
    return {"status": row["status"], "history": row["history"]}


def test_sigkill_then_resume_leaves_the_records_in_agreement(tmp_path):
    """One sweep of 3 trials killed at each point in turn, each kill followed by `resume`, the
    next kill landing in that resume: at its first trial's start, mid-sweep (a trial ended,
    another running), at the export. What had ended before a kill is never trained again."""
    samples = 3
    folder, cmd = slow_sweep(tmp_path, num_samples=samples, epochs=3, max_failures=1)
    ended: dict[str, dict] = {}
    for when in (at_first_start, mid_sweep, at_export):
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        output = collected(proc)
        deadline = time.time() + 240
        while not when(ledger(folder), "".join(output)):
            assert proc.poll() is None, f"the sweep ended before the kill point {when.__name__}"
            assert time.time() < deadline, f"the kill point {when.__name__} was never reached"
            time.sleep(0.05)
        kill_sweep(proc)
        rows = {r["trial_id"]: kept(r) for r in ledger(folder)}
        assert all(rows[trial_id] == rec for trial_id, rec in ended.items()), when.__name__
        ended = {trial_id: r for trial_id, r in rows.items() if r["status"] in TERMINAL}
        cmd = [FISHLEG_TUNE, "resume", str(folder)]

    resume(folder)

    rows = {r["trial_id"]: r for r in ledger(folder)}
    assert len(rows) == samples and {r["status"] for r in rows.values()} <= TERMINAL
    assert len({json.dumps(r["params"], sort_keys=True) for r in rows.values()}) == samples  # nothing sampled twice
    assert all(kept(rows[trial_id]) == rec for trial_id, rec in ended.items())  # ended before the last kill

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    finished = sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states)
    assert finished == samples

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert [(r.info.run_name, r.data.tags) for r in runs if r.info.status == "RUNNING"] == []
    for rec in rows.values():  # each trial's run, as its ledger row names it, ended as the row says
        run = client.get_run(rec["mlflow_run_id"])
        assert run.info.status == ("FINISHED" if rec["status"] == "COMPLETE" else "KILLED"), (rec, run.data.tags)
    named = {rec["mlflow_run_id"] for rec in rows.values()}
    dropped = [r.data.tags for r in runs if "mlflow.parentRunId" in r.data.tags and r.info.run_id not in named]
    assert all(tags["trial_status"] == "LOST" for tags in dropped)  # an attempt that started as the driver died
    assert Path(folder / "best_config.yaml").exists()
    assert "test_loss" in (folder / "best_config.yaml").read_text()


def test_resume_reports_ray_processes_a_killed_driver_left_running(tmp_path):
    """SIGKILL of the driver alone (as `kill -9 PID` or the OOM killer would): Ray's agents
    outlive it. `resume` names them, with the command that stops them. The kill is also made to
    land in Tune's write of its experiment state (the newest state file cut short, as a kill
    there leaves it): resume sets that file aside and the sweep still completes."""
    folder, cmd = slow_sweep(tmp_path, num_samples=2, epochs=2)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not (any(r["history"] for r in ledger(folder)) and list((folder / "tune").glob("experiment_state-*.json"))):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    tree = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    core = [pid for pid in tree if command(pid) in ("gcs_server", "raylet")]
    deadline = time.time() + 60
    while any(running(pid) for pid in core):  # GCS and raylet notice their driver is gone and exit
        assert time.time() < deadline, "Ray's GCS and raylet outlived their driver"
        time.sleep(0.1)
    recorded = {e["pid"] for e in json.loads((folder / "ray_processes.json").read_text())[1:]}
    alive = [pid for pid in tree if pid in recorded and running(pid)]
    assert alive, "no Ray process outlived the driver: nothing to report"  # Ray 2.60: its agents do
    state = max((folder / "tune").glob("experiment_state-*.json"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    try:
        resumed = resume(folder)
        assert "of this sweep's previous local session are still running" in resumed.stdout
        assert f"{state.name}: Tune's experiment state was cut short" in resumed.stdout
        assert state.with_name(state.name + ".damaged").exists()
        rows = ledger(folder)
        assert len(rows) == 2 and all(r["status"] in TERMINAL for r in rows)
        named = resumed.stdout.split("stop them with: kill ", 1)[1].split()
        assert set(named) >= {str(pid) for pid in alive if running(pid)}
    finally:
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def tune_saved(tune_dir: Path) -> tuple[dict, bytes] | None:
    """The one trial's last result and (pickled) checkpoint bookkeeping in Tune's newest saved
    experiment state, if one is saved and readable."""
    try:
        state = json.loads(max(tune_dir.glob("experiment_state-*.json")).read_text())
        runtime = json.loads(state["trial_data"][0][1])
        return runtime["last_result"], bytes.fromhex(runtime["checkpoint_manager"]["value"])
    except (ValueError, KeyError, IndexError, TypeError):  # not written yet, or being replaced
        return None


def at_epoch_2(saved: tuple[dict, bytes] | None) -> bool:
    """Tune's state has epoch 2's result and checkpoint (checkpoint_000001), not epoch 3's."""
    if saved is None:
        return False
    last, checkpoints = saved
    return last.get("epoch") == 2 and b"checkpoint_000001" in checkpoints and b"checkpoint_000002" not in checkpoints


def gated_sweep(tmp_path: Path, num_samples: int, epochs: int, gate_epoch: int) -> tuple[Path, list[str], Path]:
    """A `gated` sweep: (its folder, its `fishleg-tune search` command, the gate)."""
    gate = tmp_path / "gate"
    path = sweep_file(tmp_path / "tiny.yaml", search={"num_samples": num_samples}, training={"epochs": epochs})
    gated(path, gate, gate_epoch)
    folder = tmp_path / "runs" / "tiny"
    return folder, [FISHLEG_TUNE, "search", str(path), "--storage-path", str(folder.parent)], gate


def test_a_trial_that_ended_in_the_step_tune_never_saved_is_not_trained_again(tmp_path):
    """The narrowest window: the ledger, Optuna and MLflow saw the trial end, and the driver
    was killed before Tune saved that step, so Tune's state still shows it running at epoch 2
    of 3. Made exactly: the trial waits before epoch 3 (on a file, `gate`) while Tune's state
    at epoch 2 is copied; that copy is put back after the kill."""
    folder, cmd, gate = gated_sweep(tmp_path, num_samples=1, epochs=3, gate_epoch=3)
    tune_dir, stale = folder / "tune", tmp_path / "stale"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not stale.exists():  # the trial is held before epoch 3: Tune's state stays at epoch 2
        assert proc.poll() is None and time.time() < deadline, "Tune never saved epoch 2"
        if at_epoch_2(tune_saved(tune_dir)):
            shutil.copytree(tune_dir, stale, ignore=lambda d, names: [n for n in names if (Path(d) / n).is_dir()])
            if not at_epoch_2(tune_saved(stale)):
                shutil.rmtree(stale)  # copied as Tune replaced it: copy again
        time.sleep(0.05)
    gate.touch()
    while not [r for r in ledger(folder) if r["status"] == "COMPLETE"]:
        assert proc.poll() is None and time.time() < deadline, "the trial never completed"
        time.sleep(0.05)
    kill_sweep(proc)
    for path in tune_dir.iterdir():
        if path.is_file():
            path.unlink()
    shutil.copytree(stale, tune_dir, dirs_exist_ok=True)
    (before,) = ledger(folder)

    resume(folder, cwd=ROOT)

    (after,) = ledger(folder)
    assert after == before  # final: same history, status, end time (a training function tests on its own)
    assert (folder / "best_config.yaml").exists()  # the export, which the kill may precede
    replayed, _ = tune_saved(tune_dir)
    assert replayed["epoch"] == 3 and replayed["started_at_epoch"] == 0  # reported, not trained from epoch 2
    assert replayed["val_loss"] == before["history"][-1]["val_loss"]
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    run = client.get_run(before["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2, 3]  # none twice
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].value == before["history"][-1]["val_loss"]


def test_a_second_driver_of_a_running_sweep_is_refused_and_the_records_agree(tmp_path):
    """While a sweep runs, a second `search` of its name and a `resume` of its folder are refused
    at once (exit 2, naming the running driver's PID); the running sweep ends as if alone."""
    folder, cmd, gate = gated_sweep(tmp_path, num_samples=2, epochs=2, gate_epoch=2)  # held until both are refused
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (folder / "sweep.json").exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.1)
        for second in (cmd[1:], ["resume", str(folder)]):
            refused = fishleg_tune(*second, cwd=ROOT, timeout=120)
            assert refused.returncode == 2 and f"PID {proc.pid}" in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
        assert proc.poll() is None  # the refusals came while it ran
        gate.touch()
        assert proc.wait(timeout=400) == 0
    finally:
        if proc.poll() is None:
            kill_sweep(proc)
    rows = ledger(folder)
    assert len(rows) == 2 and {r["status"] for r in rows} <= TERMINAL and not (folder / "errors").exists()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert [t.state.name for t in study.trials].count("FAIL") == 0 and len(study.trials) == 2
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert len(runs) == 3 and all(r.info.status != "FAILED" for r in runs)  # the parent and two trials


def test_a_robust_sweep_killed_before_its_end_is_chosen_on_fresh_seeds_after_resume(tmp_path):
    """`--robust-top` and `--seeds` are the sweep's `selection:`, recorded in its folder, so a
    sweep killed before its end and resumed exports the best mean over fresh seeds, as the
    uninterrupted sweep would have. The trials wait at a gate before their first epoch: the
    kill lands there, and the gate opens before the resume."""
    folder, cmd, gate = gated_sweep(tmp_path, num_samples=2, epochs=2, gate_epoch=1)
    proc = subprocess.Popen(
        [*cmd, "--robust-top", "1", "--seeds", "2"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while not at_first_start(ledger(folder), ""):
        assert proc.poll() is None and time.time() < deadline, "the kill point was never reached"
        time.sleep(0.05)
    kill_sweep(proc)
    assert yaml.safe_load((folder / "sweep.yaml").read_text())["selection"] == {"robust_top": 1, "seeds": 2}
    gate.touch()

    resumed = resume(folder, cwd=ROOT)

    assert "re-training the top 1 trials with 2 fresh seeds each" in resumed.stdout
    provenance = yaml.safe_load((folder / "best_config.yaml").read_text())["provenance"]
    runs = provenance["seed_runs"]
    assert len(runs["seeds"]) == 2 and len(runs["candidates"]) == 1
    assert provenance["value"] == pytest.approx(sum(runs["finals"]) / 2)
