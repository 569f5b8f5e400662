"""`fishleg-tune compare --summary`: two comparisons (written here as compare writes them) summed
up by optimizer, checked against the counts and the performance profile worked out by hand;
through the installed executable."""

import json

import pytest

from tests.conftest import fishleg_tune
from tuning.summary import arm_names, summarize


def side(optimizer, mean, curve, elapsed):
    return {"optimizer": optimizer, "best": {"mean": mean, "curve": curve, "elapsed": elapsed}}


def comparison(folder, subject, leader, sides, verdicts):
    folder.mkdir(parents=True)
    pairs = [{"side": leader, "against": k, "split": "validation", "verdict": v} for k, v in verdicts.items()]
    data = {"subject": subject, "metric": "val_loss", "mode": "min", "leader": leader, "pairs": pairs, "sides": sides}
    (folder / "comparison.json").write_text(json.dumps(data))
    return folder


@pytest.fixture
def two(tmp_path):
    curves = comparison(
        tmp_path / "compare-curves",
        "curves_autoencoder",
        "curves_graft",
        {
            "curves_graft": side("fishleg", 72.2, [80.0, 72.2], [10.0, 20.0]),
            "curves_soap": side("soap", 72.3, [75.0, 72.3], [30.0, 60.0]),
            "curves_adamw": side("adamw", 94.0, [95.0, 94.0], [5.0, 10.0]),
        },
        {"curves_soap": "level", "curves_adamw": "better"},
    )
    charlm = comparison(
        tmp_path / "compare-charlm",
        "examples.charlm.train:fit",
        "charlm_soap",
        {
            "charlm_graft": side("fishleg", 1.7, [1.9, 1.7], [20.0, 40.0]),
            "charlm_soap": side("soap", 1.645, [1.8, 1.645], [25.0, 50.0]),
            "charlm_muon": side("muon", 1.654, [1.7, 1.654], [24.0, 48.0]),
        },
        {"charlm_graft": "better", "charlm_muon": "level"},
    )
    return curves, charlm


def test_sides_are_matched_by_name_without_the_workload_prefix():
    assert arm_names(["curves_graft", "curves_soap", "curves"], ["fishleg", "soap", "fishleg"]) == [
        "graft",
        "soap",
        "fishleg",
    ]


def test_the_summary_counts_and_the_profile_match_the_hand_worked_case(two, tmp_path):
    result = summarize(list(two), tmp_path / "out")
    curves, charlm = result.numbers["workloads"]
    # curves: graft level with soap → target = soap's 72.3: graft at 20 s, soap at 60 s, adamw never
    assert curves["target"] == 72.3 and curves["best_or_level"] == ["graft", "soap"]
    assert curves["seconds_to_target"] == {"graft": 20.0, "soap": 60.0, "adamw": None}
    # charlm: soap level with muon → target = muon's 1.654: soap at 50 s, muon at 48 s, graft never
    assert charlm["seconds_to_target"] == {"graft": None, "soap": 50.0, "muon": 48.0}
    profile = result.numbers["profile"]
    assert profile["soap"] == [[pytest.approx(50 / 48), 0.5], [3.0, 1.0]]
    assert profile["graft"] == [[1.0, 0.5]] and profile["muon"] == [[1.0, 0.5]] and profile["adamw"] == []
    assert result.lines == [
        "adamw: best or level with the best on 0 of 2 workloads (compared on 1); reached the target on 0, the "
        "fastest to it on 0",
        "graft: best or level with the best on 1 of 2 workloads (compared on 2); reached the target on 1, the "
        "fastest to it on 1",
        "muon: best or level with the best on 1 of 2 workloads (compared on 1); reached the target on 1, the "
        "fastest to it on 1",
        "soap: best or level with the best on 2 of 2 workloads (compared on 2); reached the target on 2, the "
        "fastest to it on 0",
    ]


def test_the_installed_command_writes_the_summary_and_refuses_what_is_no_comparison(two, tmp_path):
    done = fishleg_tune("compare", "--summary", *map(str, two), "--storage-path", str(tmp_path / "runs"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "soap: best or level with the best on 2 of 2 workloads" in done.stdout
    page = (tmp_path / "runs" / "compare-summary" / "summary.html").read_text()
    assert "Performance profile of time to target" in page and "curves_autoencoder" in page
    old = comparison(tmp_path / "old", "x", "a_b", {"a_b": {"optimizer": "adamw", "best": {"mean": 1.0}}}, {})
    done = fishleg_tune("compare", "--summary", str(two[0]), str(old), timeout=120)
    assert done.returncode == 2 and "not a comparison this version can sum up" in done.stderr
