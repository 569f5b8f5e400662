"""The character-level transformer example end to end, as a user runs it: the tiny sweep
through `fishleg-tune search` (real Ray Tune, Optuna, MLflow), then its best config through
`fishleg-tune train`, then the model's own test evaluation, once."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from examples.charlm.data import VOCAB, CharWindows, load_text, split_text
from examples.charlm.model import CharTransformer
from tests.conftest import fishleg_tune
from tuning.run.config import load_run_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    """The installed `fishleg-tune ARGS`, from the repository root, as the README runs it."""
    done = fishleg_tune(*args, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_text_windows_are_next_character_pairs_and_the_splits_do_not_overlap():
    codes = load_text(5000)
    assert codes.shape == (5000,) and int(codes.max()) < VOCAB
    train, val, test = split_text(codes, 0.1, 0.1)
    assert (len(train), len(val), len(test)) == (4000, 500, 500)
    assert torch.equal(torch.cat([train, val, test]), codes)
    x, y = CharWindows(train, 16)[3]
    assert torch.equal(x[1:], y[:-1]) and torch.equal(x, train[48:64])


def test_the_model_is_causal():
    model = CharTransformer(VOCAB, context=8, d_model=16, n_heads=2, n_layers=1)
    x = torch.randint(0, VOCAB, (2, 8))
    changed = x.clone()
    changed[:, 5] = (changed[:, 5] + 1) % VOCAB
    a, b = model(x).view(2, 8, VOCAB), model(changed).view(2, 8, VOCAB)
    assert torch.allclose(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:])


def test_tiny_sweep_then_train_the_best_config_then_test_once(tmp_path):
    out = cli("search", "examples/charlm/sweep_tiny.yaml", "--storage-path", str(tmp_path / "runs")).stdout
    folder = tmp_path / "runs" / "charlm_tiny"
    rows = json.loads((folder / "trials.json").read_text())
    assert len(rows) == 4 and {r["status"] for r in rows} <= {"COMPLETE", "PRUNED"}
    assert any(r["status"] == "COMPLETE" for r in rows)
    assert "its test:     not evaluated: a training function's test split is its own" in out
    best = load_run_config(folder / "best_config.yaml")
    assert best.trainable.name == "examples.charlm.train:fit" and best.optimizer.name == "fishleg"

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("charlm_tiny").experiment_id])
    status = {r.data.tags.get("trial_id", "parent"): r.info.status for r in runs}
    expected = {r["trial_id"]: "FINISHED" if r["status"] == "COMPLETE" else "KILLED" for r in rows}
    assert status == {"parent": "FINISHED", **expected}  # pruned trials end KILLED, nothing RUNNING

    train = tmp_path / "train"
    cli("train", str(folder / "best_config.yaml"), "--output", str(train), "--epochs", "1")
    assert len((train / "metrics.jsonl").read_text().splitlines()) == 1
    test = subprocess.run(
        [sys.executable, "-m", "examples.charlm.evaluate", str(train)], cwd=ROOT, capture_output=True, text=True
    )
    assert test.returncode == 0, test.stderr[-2000:]
    assert json.loads((train / "test_metrics.json").read_text())["test_loss"] < math.log(VOCAB)  # below uniform
