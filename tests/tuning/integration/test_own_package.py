"""The README's own-code example, run as a user runs it: its `mypkg/train.py` and `sweep.yaml`
in a project folder outside this repository, the installed `fishleg-tune` executable run from
there, nothing on PYTHONPATH (real Ray Tune, Optuna and MLflow). Smaller budgets are given as
overrides, so the code and the file are the README's own."""

import json
import os
import re

import pytest

from tests.conftest import ROOT, fishleg_tune

pytestmark = pytest.mark.integration


def readme_block(first_line: str) -> str:
    """The README's code block that starts with `first_line` (its file-name comment)."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(b for b in blocks if b.startswith(first_line))


def project(tmp_path, metric="val_loss"):
    """A user's folder holding the README's own-code example: mypkg/train.py and sweep.yaml."""
    folder = tmp_path / "myproject"
    (folder / "mypkg").mkdir(parents=True)
    (folder / "mypkg" / "__init__.py").write_text("")
    train = readme_block("# mypkg/train.py").replace('"val_loss": val_loss', f'"{metric}": val_loss')
    (folder / "mypkg" / "train.py").write_text(train)
    (folder / "sweep.yaml").write_text(readme_block("# sweep.yaml"))
    return folder


SMALL = ("search.num_samples=2", "training.epochs=2", "scheduler.type=none")


def test_a_users_package_is_tuned_from_the_users_folder(tmp_path):
    folder = project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = fishleg_tune("search", "sweep.yaml", *SMALL, cwd=folder, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    sweep = folder / "fishleg-runs" / "sweep"
    rows = json.loads((sweep / "trials.json").read_text())
    assert [r["status"] for r in rows] == ["COMPLETE", "COMPLETE"] and {r["epochs"] for r in rows} == {2}
    assert json.loads((sweep / "sweep.json").read_text())["overrides"] == list(SMALL)
    assert min(r["history"][-1]["val_loss"] for r in rows) < 2.3  # below chance, ln 10
    assert "MB on disk" in done.stdout


def test_a_broken_protocol_prints_one_line_per_trial_and_the_users_frame_once(tmp_path):
    folder = project(tmp_path, metric="loss")
    done = fishleg_tune("search", "sweep.yaml", *SMALL, "search.max_failures=2", cwd=folder)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out  # bad input: the function breaks the protocol
    starts = [line for line in done.stdout.splitlines() if line.startswith("start")]
    assert len(starts) == 2, out  # the user's own error fails its trial once: retries are for lost processes
    assert "Traceback" not in out and "ERROR" not in out and " INFO " not in out
    failed = [line for line in done.stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == 2 and "reported ['loss'] without 'val_loss'" in failed[0]
    assert "the same error as" in failed[1]
    source = (folder / "mypkg" / "train.py").read_text().splitlines()
    line = next(i + 1 for i, text in enumerate(source) if "context.report(" in text)
    frame = f"mypkg/train.py:{line} in fit: context.report("
    assert out.count(frame) == 1, out
    traces = sorted((folder / "fishleg-runs" / "sweep" / "errors").glob("*.txt"))
    assert len(traces) == 2 and all(f'mypkg/train.py", line {line}, in fit' in t.read_text() for t in traces)
    assert str(traces[0].parent) in out
    assert len(out.splitlines()) < 30, out
