"""examples/huggingface: a tuned FishLeg config in the Hugging Face Trainer on a tiny GPT-2, as
a user runs it: the loss falls, and a run resumed (resume_from_checkpoint) from the checkpoint a
stopped run leaves ends with the uninterrupted run's weights, bit for bit."""

import re
import shutil

import pytest
import torch

from tests.examples.conftest import run_example

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from safetensors.torch import load_file  # noqa: E402

pytestmark = pytest.mark.integration
TRAIN = "examples.huggingface.train"


def test_trainer_with_fishleg_learns_and_resumes_exactly(tmp_path):
    config = tmp_path / "best_config.yaml"
    config.write_text(  # the drop-in recipe: Adam's step lengths grafted, AdamW for embeddings and norms
        "optimizer: {name: fishleg, lr: 0.003, aux_lr: 0.001, aux_batch_size: 16, damping: 0.001,\n"
        "            update_aux_every: 10, q_init: kfac, graft: adam, partner: adamw}\n"
    )
    whole, part = tmp_path / "whole", tmp_path / "part"
    done = run_example(TRAIN, "--config", str(config), "--output", str(whole))
    eval_loss = float(re.search(r"eval_loss (\S+) after 60 steps", done.stdout).group(1))
    assert eval_loss < 2.6  # ln 128 ≈ 4.85 at the start
    assert torch.load(whole / "checkpoint-30" / "optimizer.pt", weights_only=True)["fishleg"]["step_count"] == 30

    part.mkdir()
    shutil.copytree(whole / "checkpoint-30", part / "checkpoint-30")  # what a run stopped at step 30 leaves
    resumed = run_example(TRAIN, "--config", str(config), "--output", str(part), "--resume")
    assert f"eval_loss {eval_loss:.4f} after 60 steps" in resumed.stdout
    a, b = (load_file(run / "checkpoint-60" / "model.safetensors") for run in (whole, part))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
