"""Reports and equal-budget comparisons on small real sweeps."""

import json
import shutil
import subprocess

import pytest

from tuning.cli import main
from tuning.driver import run_sweep
from tuning.report import write_report
from tuning.run.config import load_run_config

from .conftest import sweep_file


def test_report_of_a_real_sweep(ray_local, tmp_path, capsys):
    spec = sweep_file(tmp_path / "tiny.yaml", scheduler={"type": "median", "grace_period": 2})
    outcome = run_sweep(spec, storage=tmp_path / "runs")
    report = write_report(outcome.folder)
    assert set(report.figures) == {"learning_curves", "history", "parallel_coordinates", "importance"}
    assert all(p.stat().st_size > 5000 for p in report.figures.values())
    page = report.html.read_text()
    records = json.loads((outcome.folder / "trials.json").read_text())
    for rec in records:
        assert rec["trial_id"] in page
    assert page.count("data:image/png;base64,") == 4 and "provenance" in page
    assert (
        f"evaluated once for the exported config (chosen on validation): test_loss {outcome.test['test_loss']:.5g}"
        in page
    )
    # A sweep folder is self-contained: a copy under another name reports and lists the same.
    copy = tmp_path / "copied"
    shutil.copytree(outcome.folder, copy)
    assert write_report(copy).html.read_text().count("data:image/png;base64,") == 4
    assert main(["best", str(copy), "--json"]) == 0

    # Last, since it may skip: the page renders in a real headless browser.
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine: report.html was checked as text, not rendered")
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--dump-dom",
            report.html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0 and "Top trials" in dom.stdout


def test_robust_top_exports_the_best_mean_over_fresh_seeds(ray_local, tmp_path):
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


def test_compare_end_to_end(ray_local, tmp_path, capsys):
    fish = sweep_file(tmp_path / "fish.yaml", name="fish", search={"num_samples": 2}, training={"epochs": 2})
    adam = sweep_file(
        tmp_path / "adam.yaml",
        name="adam",
        optimizer={"name": "adamw"},
        search={"num_samples": 2},
        training={"epochs": 2},
        space={"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    )
    args = ["compare", str(fish), str(adam), "--storage-path", str(tmp_path / "cmp"), "--seeds", "2", "--top-k", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "cmp" / "compare-fish-vs-adam"
    summary = json.loads((folder / "comparison.json").read_text())
    fish_best, adam_best = summary["sides"]["fish"]["best"], summary["sides"]["adam"]["best"]
    assert fish_best["mean"] == pytest.approx(sum(fish_best["finals"]) / 2)
    assert summary["target"] == pytest.approx(adam_best["mean"])
    assert f"{fish_best['mean']:.4g}" in summary["verdict"] and f"{adam_best['mean']:.4g}" in summary["verdict"]
    assert f"verdict: {summary['verdict']}" in out
    for side in (fish_best, adam_best):
        assert len(side["test"]["test_loss_finals"]) == 2 and side["test"]["test_loss"] > 0
    assert f"{fish_best['test']['test_loss']:.4g} ± " in summary["verdict"]
    assert (folder / "comparison.html").exists() and (folder / "curves_vs_seconds.png").exists()
    assert adam_best["epochs_to_target"] is not None  # the baseline reaches its own mean
