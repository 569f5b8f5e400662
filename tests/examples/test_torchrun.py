"""examples/torchrun: a tuned FishLeg config in one's own DDP script under `torchrun
--nproc_per_node 2` (gloo on CPU, `aux_work: split`): replicas stay identical, and a run started
again from the checkpoint a run stopped after epoch 1 leaves ends where the uninterrupted run
does."""

import shutil

import pytest
import torch

from tests.examples.conftest import run_example

pytestmark = pytest.mark.integration
TORCHRUN = ("torchrun", "--standalone", "--nproc_per_node", "2", "-m", "examples.torchrun.train")


def test_two_processes_stay_identical_and_resume_where_the_uninterrupted_run_ends(digits_config, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    done = run_example(*TORCHRUN, "--config", str(digits_config), "--checkpoints", str(whole), "--save", str(whole))
    losses = [float(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert len(losses) == 2 and losses[1] < 0.5 * losses[0]
    part.mkdir()
    shutil.copy(whole / "epoch-1.pt", part)  # what a run stopped after epoch 1 leaves
    resumed = run_example(*TORCHRUN, "--config", str(digits_config), "--checkpoints", str(part), "--save", str(part))
    assert "epoch 1:" not in resumed.stdout and "epoch 2: train loss" in resumed.stdout
    runs = [torch.load(f"{run}.rank{rank}.pt", weights_only=True) for run in (whole, part) for rank in (0, 1)]
    assert all(torch.equal(runs[0][name], other[name]) for other in runs[1:] for name in runs[0])
