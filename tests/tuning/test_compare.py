"""The comparison's judgement from hand-made seed runs (no training): who leads, which
differences are beyond the seeds' noise, what the verdict says and what comparison.json holds."""

from pathlib import Path

import pytest

from tuning.compare import Side, judge
from tuning.selection.intervals import difference
from tuning.selection.robust import SeedRuns
from tuning.selection.sequential import SeedRounds
from tuning.sweep.spec import SweepSpec

LR = {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}}


def side(label: str, optimizer: str, finals: list[float], seconds: float = 1.0) -> tuple[Side, SeedRuns]:
    """A side whose one candidate reaches `finals` (one per seed) over two epochs of `seconds`."""
    spec = SweepSpec.model_validate(
        {"name": label, "workload": {"name": "digits_classifier"}, "optimizer": {"name": optimizer}, "space": LR}
    )
    curves = [[{"val_loss": 2.0, "epoch_time_s": seconds}, {"val_loss": v, "epoch_time_s": seconds}] for v in finals]
    runs = SeedRuns({"optimizer.lr": 0.1}, list(range(1000, 1000 + len(finals))), curves, [False] * len(finals))
    return Side(label, spec, Path(label), [runs]), runs


def verdict_of(*pairs: tuple[Side, SeedRuns], tests=None, rounds=None, left_out=None):
    sides, best = [p[0] for p in pairs], [p[1] for p in pairs]
    tests = tests or [{} for _ in sides]
    return judge(
        sides, best, tests, [[] for _ in sides], num_samples=4, target=None, rounds=rounds, left_out=left_out or {}
    )


def test_a_leader_far_beyond_the_noise_is_better_and_a_close_one_is_level():
    fish = side("fish", "fishleg", [1.00, 1.02, 0.98])
    close = side("close", "adamw", [1.01, 1.03, 0.97])
    far = side("far", "sgd", [2.00, 2.05, 1.95], seconds=0.5)
    judged = verdict_of(close, fish, far)
    summary = judged.summary
    assert summary["leader"] == "fish" and judged.titles == ["close (adamw)", "fish (fishleg)", "far (sgd)"]
    pairs = {p["against"]: p for p in summary["pairs"]}
    assert pairs["close"]["verdict"] == "level" and pairs["far"]["verdict"] == "better"
    expected = difference([1.00, 1.02, 0.98], [2.00, 2.05, 1.95], "min").to_dict()
    assert pairs["far"] == {"side": "fish", "against": "far", "split": "validation", **expected}
    assert expected["difference"] == pytest.approx(-1.0) and expected["ci_high"] < 0
    standing = "Better final val_loss: none beyond the seeds' noise: fish (fishleg) is first by the mean, level with"
    assert f"{standing} close (adamw)" in judged.verdict and "better than far (sgd)" in judged.verdict
    # Reaching a rival's final mean: far's 2.0 is reached at epoch 1 (fish's first epoch is 2.0).
    assert summary["sides"]["fish"]["best"]["reach"]["far"] == {"epochs": 1, "seconds": 1.0}
    assert summary["sides"]["far"]["best"]["seconds"] == 1.0 and summary["sides"]["far"]["best"]["epochs"] == 2


def test_every_difference_beyond_the_noise_says_better_than_every_other_and_test_is_judged_too():
    fish = side("fish", "fishleg", [1.00, 1.01, 0.99])
    far = side("far", "sgd", [2.00, 2.01, 1.99])
    tests = [{"test_loss": 1.1, "test_loss_std": 0.01, "test_loss_finals": [1.1, 1.11, 1.09]},
             {"test_loss": 1.5, "test_loss_std": 0.5, "test_loss_finals": [1.0, 2.0, 1.5]}]  # fmt: skip
    judged = verdict_of(fish, far, tests=tests)
    assert "Better final val_loss: fish (fishleg), better than every other beyond the seeds' noise" in judged.verdict
    on_test = next(p for p in judged.summary["pairs"] if p["split"] == "test")
    assert on_test["verdict"] == "level"  # test's wide spread: level there, whatever validation says
    assert "better on test: none beyond the seeds' noise" in judged.verdict


def test_sides_left_out_and_the_sequential_rule_are_stated():
    rounds = SeedRounds()
    judged = verdict_of(side("a", "fishleg", [1.0, 1.1, 0.9]), side("b", "adamw", [1.05, 1.15, 0.95]),
                        rounds=rounds, left_out={"c": "no trial ran the full 2 epochs (1 diverged)"})  # fmt: skip
    assert "(c: no trial ran the full 2 epochs (1 diverged), so it is not compared.)" in judged.verdict
    assert f"Seeds: {rounds.describe()}; each side got: a (fishleg) 3, b (adamw) 3." in judged.verdict
    assert judged.summary["confidence"] == rounds.confidence and judged.summary["left_out"] == {
        "c": "no trial ran the full 2 epochs (1 diverged)"
    }
    assert f"({100 * rounds.confidence:.4g}% interval)" in judged.verdict
