"""Reports and equal-budget comparisons on small real sweeps."""

import json
import shutil

import pytest

from tests.browser import render
from tuning.cli import main
from tuning.driver import run_sweep
from tuning.report import write_report
from tuning.run.config import load_run_config
from tuning.selection.intervals import difference

from .conftest import sweep_file


def visible_rows(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#trials tbody tr:not([hidden])", "rows => rows.map(r => Array.from(r.cells, c => c.textContent))"
    )


def sort_and_filter(page) -> dict:
    """Click the metric's header twice (ascending, then descending) and filter by a trial id."""
    header = page.locator("#trials th", has_text="val_loss")
    header.click()
    ascending = visible_rows(page)
    header.click()
    descending = visible_rows(page)
    page.fill("input[data-table=trials]", ascending[-1][0])
    return {"ascending": ascending, "descending": descending, "filtered": visible_rows(page)}


def test_a_robust_sweep_exports_the_best_mean_over_fresh_seeds_and_its_report_draws(ray_local, tmp_path):
    # One real sweep for both: the choice over fresh seeds, then its report in a real browser.
    outcome = run_sweep(
        sweep_file(tmp_path / "tiny.yaml", scheduler={"type": "none"}, search={"num_samples": 3}),
        storage=tmp_path / "runs",
        robust_top=2,
        seeds=2,
    )
    best = load_run_config(outcome.folder / "best_config.yaml").provenance
    runs = best["seed_runs"]
    assert runs["seeds"] == [1000, 1001] and len(runs["finals"]) == 2 and len(runs["candidates"]) == 2
    assert best["value"] == pytest.approx(sum(runs["finals"]) / 2)
    assert best["value"] == pytest.approx(min(c["mean"] for c in runs["candidates"]))
    # Test once, on the chosen config's two seed re-runs; the ledger row of that trial holds it.
    assert best["test_on"] == "seed re-runs (mean)"
    per_seed = best["test_seed_runs"]["test_loss_finals"]
    assert len(per_seed) == 2 and best["test"]["test_loss"] == pytest.approx(sum(per_seed) / 2)
    records = json.loads((outcome.folder / "trials.json").read_text())
    assert [r["test"] for r in records if r["test"]] == [best["test"]]

    # The report of the same sweep.
    report = write_report(outcome.folder, png=True)
    assert set(report.figures) == {"learning_curves", "history", "parallel_coordinates", "importance"}
    assert all(p.stat().st_size > 5000 for p in report.figures.values())
    page = report.html.read_text()
    for rec in records:
        assert f"<td>{rec['trial_id']}</td>" in page
    figures = ["history", "parallel_coordinates", "importance", "slice", "contour", "learning_curves"]
    assert [f for f in figures if f"data-figure='{f}'" in page] == figures
    assert "https://" not in page.split("id='plotly-gz'")[0] and "provenance" in page
    assert f"(chosen on validation): test_loss {outcome.test['test_loss']:.5g}" in page
    assert report.html.stat().st_size < 5_000_000
    # A sweep folder is self-contained: a copy under another name reports and lists the same.
    copy = tmp_path / "copied"
    shutil.copytree(outcome.folder, copy)
    assert write_report(copy).html.read_text().count("data-figure=") == len(figures)
    assert main(["best", str(copy), "--json"]) == 0

    # In a real browser: every figure drawn, no console error, no request but the file itself.
    seen = render(report.html, interact=sort_and_filter)
    assert seen.rendered == len(figures) and seen.errors == []
    assert seen.requests == [report.html.resolve().as_uri()]
    assert all(svg > 0 for svg, _ in seen.figures.values()) and seen.figures["parallel_coordinates"][1] > 0
    values = [float(row[3]) for row in seen.interaction["ascending"] if row[3]]
    assert values == sorted(values) and len(values) >= 3
    assert seen.interaction["descending"][0] == seen.interaction["ascending"][-1]
    assert [row[0] for row in seen.interaction["filtered"]] == [seen.interaction["ascending"][-1][0]]


def test_compare_of_three_sweeps_end_to_end(ray_local, tmp_path, capsys):
    sweeps = [sweep_file(tmp_path / "fish.yaml", name="fish", search={"num_samples": 2}, training={"epochs": 2})]
    sweeps += [
        sweep_file(
            tmp_path / f"{name}.yaml",
            name=name,
            optimizer={"name": name},
            search={"num_samples": 2},
            training={"epochs": 2},
            space={"optimizer.lr": {"type": "float", "low": low, "high": high, "log": True}},
        )
        for name, low, high in (("adamw", 1e-3, 1e-2), ("sgd", 1e-2, 0.3))
    ]
    sweeps.append(  # every trial diverges in its first epoch
        sweep_file(
            tmp_path / "big.yaml",
            name="big",
            optimizer={"name": "sgd", "momentum": 0.9},
            search={"num_samples": 2},
            training={"epochs": 2},
            space={"optimizer.lr": {"type": "float", "low": 1e14, "high": 1e15, "log": True}},
        )
    )
    args = ["compare", *map(str, sweeps), "--storage-path", str(tmp_path / "cmp"), "--seeds", "2", "--top-k", "1"]
    args += ["--num-samples", "1"]  # one trial each: the comparison's mechanics, not a search
    assert main(args) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "cmp" / "compare-fish-vs-adamw-vs-sgd-vs-big"
    summary = json.loads((folder / "comparison.json").read_text())
    best = {label: side["best"] for label, side in summary["sides"].items()}
    assert list(best) == ["fish", "adamw", "sgd"]  # big diverged in every trial: left out, said why
    assert summary["left_out"] == {"big": "no trial ran the full 2 epochs (1 diverged)"}
    assert "(big: no trial ran the full 2 epochs (1 diverged), so it is not compared.)" in summary["verdict"]
    order = sorted(best, key=lambda label: best[label]["mean"])
    titles = {label: f"{label} ({name})" for label, name in (("fish", "fishleg"), ("adamw", "adamw"), ("sgd", "sgd"))}
    assert summary["verdict"].index(f"{titles[order[0]]} {best[order[0]]['mean']:.4g}") < summary["verdict"].index(
        f"{titles[order[-1]]} {best[order[-1]]['mean']:.4g}"
    )
    assert f"verdict: {summary['verdict']}" in out and summary["leader"] == order[0]
    # The leader against each other side, validation and test: Welch's interval of the difference
    # of the seeds' finals, and the words that follow it.
    pairs = {(p["against"], p["split"]): p for p in summary["pairs"]}
    assert sorted(pairs) == sorted((label, split) for label in order[1:] for split in ("validation", "test"))
    finals = {
        (label, split): side["finals"] if split == "validation" else side["test"]["test_loss_finals"]
        for label, side in best.items()
        for split in ("validation", "test")
    }
    for (other, split), pair in pairs.items():
        expected = difference(finals[order[0], split], finals[other, split], "min").to_dict()
        assert pair == {"side": order[0], "against": other, "split": split, **expected}
    # FishLeg's chosen config beside itself with only Q changed, on the same seeds.
    (held,) = summary["sides"]["fish"]["ablations"]
    assert held["name"] == "Q held at init_scale·I (learn_q false)" and len(held["finals"]) == 2
    assert held["learnt_q_minus_it"] == difference(best["fish"]["finals"], held["finals"], "min").to_dict()
    assert summary["sides"]["adamw"]["ablations"] == [] and "What the learnt Q adds to fish (fishleg)" in out
    wins = [pairs[(other, "validation")]["verdict"] == "better" for other in order[1:]]
    assert all(side["title"] == titles[label] for label, side in summary["sides"].items())
    if all(wins):
        assert f"Better final val_loss: {titles[order[0]]}, better than every other" in summary["verdict"]
    else:
        assert f"Better final val_loss: none beyond the seeds' noise: {titles[order[0]]} is first" in summary["verdict"]
    for label, side in best.items():
        assert side["mean"] == pytest.approx(sum(side["finals"]) / 2)
        assert sorted(side["reach"]) == sorted(set(best) - {label})
        assert len(side["test"]["test_loss_finals"]) == 2
        assert side["test"]["test_loss"] == pytest.approx(sum(side["test"]["test_loss_finals"]) / 2)
    # The best reaches every rival's final mean, at its last epoch at the latest.
    assert all(r["epochs"] in (1, 2) for r in best[order[0]]["reach"].values())
    seen = render(folder / "comparison.html")
    assert seen.rendered == 2 and seen.errors == [] and len(seen.requests) == 1
    assert all(svg > 0 for svg, _ in seen.figures.values())

    # compare --summary reads what compare wrote (here the comparison and a copy of it, as if a
    # second workload had come out the same): the sides level with the leader are best or level
    # on both, and the target is the loosest final among them.
    shutil.copytree(folder, tmp_path / "again")
    assert main(["compare", "--summary", str(folder), str(tmp_path / "again"), "--storage-path", str(tmp_path)]) == 0
    summed = json.loads((tmp_path / "compare-summary" / "summary.json").read_text())
    level = [order[0], *(other for other in order[1:] if pairs[(other, "validation")]["verdict"] == "level")]
    assert [sorted(w["best_or_level"]) for w in summed["workloads"]] == [sorted(level)] * 2
    assert summed["workloads"][0]["target"] == max(best[label]["mean"] for label in level)
    out = capsys.readouterr().out
    assert f"{order[0]}: best or level with the best on 2 of 2 workloads" in out

    # A compare stopped after its sweeps and seed re-runs (here: its report removed) is run
    # again: the sweeps it finished and every seed re-run are read back, none trained again.
    trials = {side: (folder / side / "trials.json").read_text() for side in ("fish", "adamw", "sgd", "big")}
    kept = {p.name: p.stat().st_mtime_ns for p in (folder / "seed_runs").iterdir()}
    (folder / "comparison.json").unlink()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("is reused, not run again") == 4
    runs = sum(name.endswith(".json") for name in kept)  # 2 seeds of: fish's choice and its ablation, adamw's, sgd's
    assert runs == 4 * 2 and f"{runs} seed re-runs were read back" in out
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "seed_runs").iterdir()} == kept
    assert {side: (folder / side / "trials.json").read_text() for side in trials} == trials
    again = json.loads((folder / "comparison.json").read_text())
    assert {label: side["best"]["finals"] for label, side in again["sides"].items()} == {
        label: side["finals"] for label, side in best.items()
    }
