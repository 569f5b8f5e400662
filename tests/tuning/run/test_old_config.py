"""A best_config.yaml exported before FishLeg's options were given to its parts (every optimizer
key flat, the options of parts that are off written too) loads and trains, through the
installed `fishleg-tune train`, to the numbers that version trained it to, bitwise."""

import json
from pathlib import Path

from tests.conftest import fishleg_tune

OLD = Path(__file__).parent / "data" / "best_config_flat.yaml"
# `fishleg-tune train best_config_flat.yaml --epochs 2` at that commit: metrics.jsonl
RECORDED = [
    {"train_loss": 1.841497540473938, "val_loss": 1.1602700263365635, "val_accuracy": 0.8641114982578397,
     "aux_loss": -0.768155574798584},
    {"train_loss": 0.662417471408844, "val_loss": 0.41360284891693433, "val_accuracy": 0.9059233449477352,
     "aux_loss": -0.21201872825622559},
]  # fmt: skip


def test_an_old_flat_best_config_trains_to_the_numbers_it_trained_to(tmp_path):
    done = fishleg_tune("train", str(OLD), "--output", str(tmp_path / "out"), "--epochs", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [{k: row[k] for k in RECORDED[0]} for row in rows] == RECORDED
