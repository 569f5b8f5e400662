"""Where a user's `package.module:function` comes from, and what a cluster is sent of it."""

import sys

import pytest

from tuning.run.plugins import local_sources
from tuning.sweep import tuner


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's folder, the current one, on the path first (as the command puts it)."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "train.py").write_text("def fit(config, context):\n    pass\n")
    (tmp_path / "single.py").write_text("def fit(config, context):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("mypkg", "mypkg.train", "single"):
        sys.modules.pop(name, None)


def test_code_in_the_current_folder_is_shipped_and_installed_code_is_not(project):
    names = ["mypkg.train:fit", "single:fit", "yaml:safe_load", "tuning.training:fit_for", "mypkg.train:fit"]
    assert local_sources(names) == [project / "mypkg", project / "single.py"]
    assert local_sources(["no_such_module:fit"]) == []


def test_a_cluster_gets_the_code_as_py_modules_and_a_local_ray_needs_none(project, monkeypatch):
    calls = []
    monkeypatch.setattr(tuner.os, "environ", dict(tuner.os.environ))  # connect's Ray settings stay here
    monkeypatch.setattr(tuner.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(tuner.ray, "init", lambda **kwargs: calls.append(kwargs))
    code = local_sources(["mypkg.train:fit"])
    tuner.connect("10.0.0.5:6379", code)
    tuner.connect(None, code)
    assert calls[0]["runtime_env"]["py_modules"] == [str(project / "mypkg")]
    assert "py_modules" not in calls[1]["runtime_env"]
