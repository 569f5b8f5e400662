"""examples/lightning: a tuned FishLeg config in a LightningModule, as a user runs it: a fit
whose loss falls, a run resumed with ckpt_path= from the checkpoint of epoch 1 that ends bitwise
where the uninterrupted one does, and DDP on two CPU processes keeping the replicas equal, with
an option that runs Lightning's closure (adaptive damping)."""

import json
from pathlib import Path

import pytest
import torch

from examples.digits import digits
from tests.examples.conftest import run_example

pytest.importorskip("lightning")
pytestmark = pytest.mark.integration
TRAIN = "examples.lightning.train"


def _params(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def _nll(params: dict[str, torch.Tensor]) -> float:
    x, y = digits().tensors
    hidden = torch.tanh(x @ params["net.0.weight"].T + params["net.0.bias"])
    return float(torch.nn.functional.cross_entropy(hidden @ params["net.2.weight"].T + params["net.2.bias"], y))


def test_fit_then_resume_from_the_epoch_1_checkpoint_is_bitwise_equal(digits_config, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    done = run_example(TRAIN, "--config", str(digits_config), "--root", str(whole), "--save", str(whole / "p"))
    assert "trained 2 epochs" in done.stdout
    trained = _params(whole / "p.rank0.pt")
    assert _nll(trained) < 0.3  # from ln 10 ≈ 2.3 at the start

    # Lightning's checkpoint after epoch 1: what a run stopped there leaves
    (checkpoint,) = whole.glob("lightning_logs/version_0/checkpoints/epoch=0-*.ckpt")
    saved = torch.load(checkpoint, weights_only=True)["optimizer_states"][0]["fishleg"]
    steps_per_epoch = len(digits()) // 32  # the module's batch size, last partial batch dropped
    assert saved["step_count"] == steps_per_epoch  # FishLeg's own state, as it stood after epoch 1
    assert saved["aux_step_count"] == steps_per_epoch // 5  # update_aux_every 5
    args = ("--root", str(part), "--ckpt-path", str(checkpoint), "--save", str(part / "p"))
    run_example(TRAIN, "--config", str(digits_config), *args)
    resumed = _params(part / "p.rank0.pt")
    assert all(torch.equal(trained[name], resumed[name]) for name in trained)


def test_ddp_on_two_cpu_processes_keeps_the_replicas_identical_with_lightnings_closure(tmp_path):
    # adaptive_damping needs a closure: FishLeg runs the one Lightning passes to optimizer.step
    config = tmp_path / "best_config.yaml"
    config.write_text(
        "optimizer: {name: fishleg, lr: 0.1, aux_lr: 0.001, aux_batch_size: 32, damping: 0.01,\n"
        "            update_aux_every: 5, q_init: kfac, adaptive_damping: true}\n"
    )
    args = ("--devices", "2", "--strategy", "ddp", "--root", str(tmp_path), "--save", str(tmp_path / "p"))
    run_example(TRAIN, "--config", str(config), *args)
    rank0, rank1 = _params(tmp_path / "p.rank0.pt"), _params(tmp_path / "p.rank1.pt")
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    (checkpoint,) = tmp_path.glob("lightning_logs/version_0/checkpoints/epoch=1-*.ckpt")
    damping = torch.load(checkpoint, weights_only=True)["optimizer_states"][0]["fishleg"]
    assert torch.isfinite(damping["last_rho"]) and damping["damping_scale"] != 1  # the rule ran on the closure
    assert _nll(rank0) < 0.6  # half the steps of one process (each rank has half the data)


def test_a_lightning_module_and_data_module_tuned_as_they_are_then_trained(tmp_path):
    """examples/lightning/sweep.yaml through the installed `fishleg-tune`, from the repository
    root as its docstring says: the trials report what the module logs (ASHA prunes on it),
    the best config trains in Lightning under `fishleg-tune train`, stopped and resumed to the
    same numbers. (`compare` runs the same trials through the same function: tested on its own.)"""
    runs = tmp_path / "runs"
    search = ("search", "examples/lightning/sweep.yaml", "--storage-path", str(runs), "search.num_samples=3")
    out = run_example("fishleg-tune", *search).stdout
    folder = runs / "lightning"
    rows = json.loads((folder / "trials.json").read_text())
    assert len(rows) == 3 and {r["status"] for r in rows} == {"COMPLETE", "PRUNED"}, out
    for row in rows:
        assert {"train_loss", "val_loss", "val_accuracy"} <= set(row["history"][0])
        assert [h["epoch"] for h in row["history"]] == list(range(1, len(row["history"]) + 1))
    best = min((r for r in rows if r["status"] == "COMPLETE"), key=lambda r: r["history"][-1]["val_loss"])
    assert best["history"][-1]["val_loss"] < 0.5  # from ln 10 ≈ 2.3

    whole, part = tmp_path / "whole", tmp_path / "part"
    best_file = str(folder / "best_config.yaml")
    run_example("fishleg-tune", "train", best_file, "--output", str(whole), "--epochs", "3")
    run_example("fishleg-tune", "train", best_file, "--output", str(part), "--epochs", "2")
    run_example("fishleg-tune", "train", best_file, "--output", str(part), "--epochs", "3", "--resume")
    ran = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_loss"] for r in ran] == [r["val_loss"] for r in resumed]  # epoch 3 from epoch 2's checkpoint
