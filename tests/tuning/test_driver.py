"""A sweep file is read and validated once on its way to a plan, and compare's equal budget is
set on what was read, exactly as the option would set it."""

import tuning.run.config
from tests.tuning.sweep.test_search_input import write_good
from tuning.driver import place_sweep, plan_sweep, read_sweep_file
from tuning.run.overrides import parse_overrides


def test_a_plan_reads_and_validates_its_file_once(tmp_path, monkeypatch):
    path = write_good(tmp_path)
    reads = []
    parse = tuning.run.config.parse_yaml
    monkeypatch.setattr(tuning.run.config, "parse_yaml", lambda p: reads.append(p) or parse(p))
    plan = plan_sweep(path, storage=tmp_path / "runs", num_samples=5)
    assert reads == [path] and plan.file.spec.search.num_samples == 5


def test_with_num_samples_is_what_the_option_makes_of_the_file(tmp_path):
    path = write_good(tmp_path)
    overrides = parse_overrides(["training.epochs=3"], str(path))
    given = read_sweep_file(path, overrides=overrides).with_num_samples(7)
    by_option = read_sweep_file(path, num_samples=7, overrides=overrides)
    assert given.spec == by_option.spec and given.data == by_option.data
    assert [o.text for o in given.overrides] == [o.text for o in by_option.overrides]
    placed = place_sweep(given, storage=tmp_path / "runs", name="seven")
    assert placed.file.spec.search.num_samples == 7 and placed.folder.name == "seven"
    same = read_sweep_file(path)
    assert same.with_num_samples(same.spec.search.num_samples) is same
