"""Seed re-runs kept on disk: a run is read back only for the very config it was trained with."""

import torch

from tuning.selection.seed_store import SeedStore

CONFIG = {"optimizer": {"name": "fishleg", "lr": 0.01}, "training": {"seed": 1000, "epochs": 2}}
CURVE = [{"epoch": 1, "val_loss": 2.0}, {"epoch": 2, "val_loss": 1.5}]


def test_a_filed_run_reads_back_with_its_weights_and_another_seed_or_value_does_not(tmp_path):
    store = SeedStore.under(tmp_path)
    assert store.get(CONFIG) is None
    weights = {"layer.weight": torch.arange(6.0).reshape(2, 3)}
    store.put(CONFIG, (CURVE, False, weights))
    again = SeedStore.under(tmp_path)  # a later process
    curve, diverged, kept = again.get(
        {"training": {"epochs": 2, "seed": 1000}, "optimizer": {"lr": 0.01, "name": "fishleg"}}
    )
    assert (curve, diverged, list(kept)) == (CURVE, False, ["layer.weight"]) and again.read == 1
    assert torch.equal(kept["layer.weight"], weights["layer.weight"])
    assert again.get({**CONFIG, "training": {"seed": 1001, "epochs": 2}}) is None
    assert again.get({**CONFIG, "optimizer": {"name": "fishleg", "lr": 0.02}}) is None and again.read == 1


def test_a_diverged_run_without_weights_and_a_half_written_one(tmp_path):
    store = SeedStore.under(tmp_path)
    store.put(CONFIG, (CURVE[:1], True, None))
    assert store.get(CONFIG) == (CURVE[:1], True, None)
    assert not list(store.folder.glob("*.pt"))
    other = {**CONFIG, "training": {"seed": 7, "epochs": 2}}
    (store.folder / f"{store.key(other)}.pt").write_bytes(b"cut short")  # weights written, curve never
    assert store.get(other) is None
