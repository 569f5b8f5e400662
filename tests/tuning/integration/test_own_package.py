"""A user's own package, tuned as a user runs it: the installed `fishleg-tune` executable, from
the user's project folder outside this repository, with `trainable: mypkg.train:fit` in the
sweep file and nothing on PYTHONPATH (real Ray Tune, Optuna and MLflow)."""

import json
import os
import textwrap

import pytest
import yaml

from tests.conftest import fishleg_tune

pytestmark = pytest.mark.integration

TRAIN = '''
import torch
from torch import nn


def fit(config, context):
    """Least squares on a fixed random problem, with the optimizer the config names."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    model = nn.Linear(4, 1)
    optimizer = config.build_optimizer(model, likelihood="gaussian", aux_data=x[:64], seed=context.seed)
    for epoch in range(context.epoch, config.training.epochs):
        for i in range(0, 64, config.training.batch_size):
            optimizer.zero_grad()
            loss = ((model(x[i : i + config.training.batch_size]) - y[i : i + config.training.batch_size]) ** 2).mean()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val = ((model(x[64:]) - y[64:]) ** 2).mean()
        context.report({METRICS})
'''


def project(tmp_path, metrics="'val_loss': val"):
    """A user's folder: their package and a sweep file naming its function."""
    folder = tmp_path / "myproject"
    (folder / "mypkg").mkdir(parents=True)
    (folder / "mypkg" / "__init__.py").write_text("")
    (folder / "mypkg" / "train.py").write_text(textwrap.dedent(TRAIN).replace("{METRICS}", "{" + metrics + "}"))
    spec = {
        "name": "mine",
        "trainable": "mypkg.train:fit",
        "optimizer": {"name": "fishleg", "aux_batch_size": 16, "update_aux_every": 2},
        "training": {"epochs": 2, "batch_size": 16, "device": "cpu"},
        "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True}},
        "search": {"num_samples": 2, "max_concurrent": 2, "max_failures": 0},
        "scheduler": {"type": "none"},
    }
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def test_a_users_package_is_tuned_and_trained_from_the_users_folder(tmp_path):
    folder = project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = fishleg_tune("search", "sweep.yaml", "training.epochs=3", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    sweep = folder / "fishleg-runs" / "mine"
    rows = json.loads((sweep / "trials.json").read_text())
    assert [r["status"] for r in rows] == ["COMPLETE", "COMPLETE"] and {r["epochs"] for r in rows} == {3}
    assert json.loads((sweep / "sweep.json").read_text())["overrides"] == ["training.epochs=3"]
    assert "MB on disk" in done.stdout

    trained = fishleg_tune("train", "fishleg-runs/mine/best_config.yaml", "--output", "best", cwd=folder, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert len((folder / "best" / "metrics.jsonl").read_text().splitlines()) == 3


def test_a_broken_protocol_prints_one_line_per_trial_and_the_users_frame_once(tmp_path):
    folder = project(tmp_path, metrics="'loss': val")
    done = fishleg_tune("search", "sweep.yaml", cwd=folder)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out  # bad input: the function breaks the protocol
    assert "Traceback" not in out and "ERROR" not in out and " INFO " not in out
    failed = [line for line in done.stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == 2 and "reported ['loss'] without 'val_loss'" in failed[0]
    assert "the same error as" in failed[1]
    frame = "mypkg/train.py:21 in fit: context.report({'loss': val})"
    assert out.count(frame) == 1, out
    traces = sorted((folder / "fishleg-runs" / "mine" / "errors").glob("*.txt"))
    assert len(traces) == 2 and all('mypkg/train.py", line 21, in fit' in t.read_text() for t in traces)
    assert str(traces[0].parent) in out
    assert len(out.splitlines()) < 30, out
