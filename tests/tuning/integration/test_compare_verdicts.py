"""`fishleg-tune compare` through the installed executable, as a user runs it: two sweep files
that differ only in their name are level (never "better"), a side far behind is "worse" with
its interval, a sweep `search` already ran is read back instead of run again, a sweep whose
trials all fail in the user's code ends the compare naming the error (exit 1), and Ctrl-C exits
130 keeping what it ran."""

import json
import signal
import subprocess
import time

import pytest
import yaml

from tests.conftest import FISHLEG_TUNE, ROOT, fishleg_tune

from .conftest import gated, sweep_file

pytestmark = pytest.mark.slow


GRAFTED = {"name": "fishleg", "update_aux_every": 5, "aux_batch_size": 32, "graft": "adam"}
LR = {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.03}}


def tiny(path, name, **sections):
    """A one-trial digits sweep of 2 epochs (the comparison's mechanics, not a search): by
    default FishLeg with grafting, which trains in that budget (validation 2.3 → about 1.0)."""
    sections = {"optimizer": GRAFTED, "space": LR} | sections
    return sweep_file(path, name=name, search={"num_samples": 1}, training={"epochs": 2}, **sections)


def test_twins_are_level_a_hopeless_side_is_worse_and_a_searched_sweep_is_reused(tmp_path):
    runs = tmp_path / "runs"
    twin_a, twin_b = tiny(tmp_path / "twin_a.yaml", "twin_a"), tiny(tmp_path / "twin_b.yaml", "twin_b")
    hopeless = tiny(  # SGD at a learning rate that barely moves the weights in 2 epochs
        tmp_path / "slow.yaml",
        "slow",
        optimizer={"name": "sgd"},
        space={"optimizer.lr": {"type": "float", "low": 1e-6, "high": 2e-6, "log": True}},
    )
    searched = fishleg_tune("search", str(twin_a), "--storage-path", str(runs), cwd=tmp_path)
    assert searched.returncode == 0, searched.stderr[-2000:]
    before = (runs / "twin_a" / "trials.json").read_text()

    args = ("compare", str(twin_a), str(twin_b), str(hopeless), "--seeds", "auto", "--max-seeds", "4", "--top-k", "1")
    done = fishleg_tune(*args, "--storage-path", str(runs), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"sweep twin_a: the finished sweep in {runs / 'twin_a'} is reused, not run again" in done.stdout
    assert (runs / "twin_a" / "trials.json").read_text() == before
    summary = json.loads((runs / "compare-twin_a-vs-twin_b-vs-slow" / "comparison.json").read_text())
    sides = summary["sides"]
    assert sides["twin_a"]["best"]["finals"] == sides["twin_b"]["best"]["finals"]  # same space, seeds, trials
    # --seeds auto: the level leader and runner-up (the twins) got seeds up to --max-seeds, the
    # third side kept the first round's 3; every interval at the shared confidence (2 looks).
    assert [len(sides[s]["best"]["finals"]) for s in ("twin_a", "twin_b", "slow")] == [4, 4, 3]
    assert summary["sequential"]["looks"] == 2 and summary["confidence"] == pytest.approx(0.975)
    assert "Seeds: seeds added 2 at a time" in done.stdout.replace("\n", " ")
    assert sides["twin_a"]["title"] == "twin_a (fishleg)" and sides["slow"]["title"] == "slow (sgd)"
    pairs = {(p["against"], p["split"]): p for p in summary["pairs"]}
    leader, twin = ("twin_a", "twin_b") if summary["leader"] == "twin_a" else ("twin_b", "twin_a")
    for split in ("validation", "test"):
        level = pairs[twin, split]
        assert level["difference"] == 0.0 and level["ci_low"] <= 0.0 <= level["ci_high"] and level["verdict"] == "level"
        far = pairs["slow", split]
        assert far["verdict"] == "better" and far["ci_high"] < 0  # the leader's loss is lower, beyond the noise
    verdict = " ".join(done.stdout.split())
    level_with = f"{leader} (fishleg) is first by the mean, level with {twin} (fishleg)"
    assert f"none beyond the seeds' noise: {level_with}" in verdict
    assert "better than slow (sgd)" in verdict
    variants = [a["name"] for a in sides["twin_a"]["ablations"]]  # Q starts at init_scale·I
    assert variants == ["Q held at init_scale·I (learn_q false)"]
    assert sides["twin_a"]["ablations"] == sides["twin_b"]["ablations"] and sides["slow"]["ablations"] == []
    assert f"Better final val_loss: {leader} (fishleg), better than every other" not in verdict


def test_a_sweep_whose_trials_all_fail_in_the_users_code_ends_the_compare_naming_the_error(tmp_path):
    files = []
    for name in ("own_a", "own_b"):
        path = tiny(tmp_path / f"{name}.yaml", name, scheduler={"type": "none"})
        spec = yaml.safe_load(path.read_text())
        spec.pop("workload")
        spec["trainable"] = {"name": "tests.tuning.plugins:fit_raises"}
        spec["search"]["num_samples"] = 2
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        files.append(str(path))
    done = fishleg_tune("compare", *files, "--storage-path", str(tmp_path / "runs"), cwd=ROOT)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    message = " ".join(done.stderr.split())
    assert "every trial of the own_a sweep failed with the same error" in message
    assert "raised ValueError: no data here" in message and "raise num_samples" not in message
    assert "Traceback" not in done.stderr


def test_ctrl_c_in_a_compare_exits_130_keeping_what_it_ran(tmp_path):
    """SIGINT while the first sweep's trial waits at a gate: exit 130 with how to continue, the
    interrupted trial kept in the ledger for the resume (the same command resumes an unfinished
    sweep of its own: test_report_compare's rerun), nothing started after it."""
    gate = tmp_path / "gate"
    files = []
    for name in ("held_a", "held_b"):
        path = tiny(tmp_path / f"{name}.yaml", name, scheduler={"type": "none"})
        gated(path, gate, gate_epoch=2, n=32)
        files.append(str(path))
    cmd = [FISHLEG_TUNE, "compare", *files, "--storage-path", str(tmp_path / "runs"), "--seeds", "1", "--top-k", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = tmp_path / "runs" / "compare-held_a-vs-held_b" / "held_a" / "trials.json"
    deadline = time.time() + 240
    while not (ledger.exists() and '"epoch": 1' in ledger.read_text()):
        assert proc.poll() is None and time.time() < deadline, "the first trial never reached its gate"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert "run the same compare command again to continue" in " ".join(err.split())
    (trial,) = json.loads(ledger.read_text())
    assert trial["status"] == "INTERRUPTED" and trial["epochs"] == 1  # kept for the resume, not lost
    assert not (tmp_path / "runs" / "compare-held_a-vs-held_b" / "held_b").exists()  # nothing after it started
