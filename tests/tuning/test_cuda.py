"""The toolkit on a CUDA device: a built-in run, a user's training function, a sweep whose
trials share one GPU (resources.gpu 0.5), and a trial on two GPUs (nccl). Skipped without a GPU."""

import pytest
import torch

from tests.tuning.integration.conftest import sweep_file
from tuning.driver import run_sweep
from tuning.records.folder import SweepFolder
from tuning.records.ledger import Ledger
from tuning.run.config import RunConfig
from tuning.run.fit import LocalContext
from tuning.training import Trainer, fit_for

pytestmark = pytest.mark.cuda


def test_a_built_in_run_trains_on_cuda():
    config = RunConfig.model_validate(
        {"workload": {"name": "digits_classifier", "hidden": [32]}, "training": {"epochs": 2, "device": "cuda"}}
    )
    trainer = Trainer(config)
    first = trainer.run_epoch()
    second = trainer.run_epoch()
    assert next(trainer.model.parameters()).device.type == "cuda"
    assert second["val_loss"] < first["val_loss"]


def test_a_training_function_gets_the_cuda_device():
    config = RunConfig.model_validate(
        {
            "trainable": {"name": "examples.charlm.train:fit", "num_chars": 20000, "context": 16, "d_model": 16,
                          "n_heads": 2, "n_layers": 1, "batches_per_epoch": 5, "eval_windows": 8},
            "training": {"epochs": 2, "batch_size": 8, "device": "cuda"},
        }
    )  # fmt: skip
    context = LocalContext(config)
    fit_for(config)(config, context)
    assert context.device.type == "cuda" and [r["epoch"] for r in context.history] == [1, 2]


def test_fractional_gpu_trials_share_one_card(tmp_path):
    """With gpu 0.5 per trial, two trials run at the same time on one card: their spans in the
    ledger overlap (with a whole card each, a one-GPU machine would run them one by one)."""
    assert torch.cuda.device_count() >= 1
    spec = sweep_file(
        tmp_path / "gpu.yaml",
        training={"device": "cuda", "epochs": 3},
        resources={"cpu": 1, "gpu": 0.5},
        scheduler={"grace_period": 3},
    )
    outcome = run_sweep(spec, storage=tmp_path / "runs", echo=lambda line: None)
    assert not outcome.interrupted and outcome.counts.get("COMPLETE")
    records = sorted(Ledger(outcome.folder / SweepFolder.LEDGER).records.values(), key=lambda r: r.started)
    assert any(a.ended > b.started for a, b in zip(records, records[1:])), [(r.started, r.ended) for r in records]
    assert outcome.test is not None  # the chosen checkpoint, tested on the GPU too


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl needs a GPU per worker: two workers need two GPUs")
def test_a_two_worker_trial_trains_on_two_gpus_with_nccl(tmp_path):
    """The CPU test's file (tests/tuning/integration/test_workers.py) with a GPU per worker."""
    spec = sweep_file(
        tmp_path / "gpus.yaml",
        training={"device": "cuda", "epochs": 2},
        search={"num_samples": 1, "max_concurrent": 1},
        resources={"cpu": 1, "gpu": 1, "workers": 2},
    )
    outcome = run_sweep(spec, storage=tmp_path / "runs", echo=lambda line: None)
    assert outcome.counts == {"COMPLETE": 1} and outcome.test is not None
