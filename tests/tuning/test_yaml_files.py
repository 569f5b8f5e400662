"""Hand-edited YAML read strictly: what `yaml.safe_load` lets pass silently is refused with the
file and line."""

import os

import pytest

from tuning.errors import ConfigError, UserError
from tuning.yaml_files import MAX_YAML_NODES, load_yaml_text, parse_yaml


def test_reads_what_safe_load_reads_and_merge_keys_may_override():
    assert load_yaml_text("a: 1\nb: [x, {c: 2}]\n") == {"a": 1, "b": ["x", {"c": 2}]}
    assert load_yaml_text("base: &b {lr: 0.1, damping: 1}\nrun:\n  <<: *b\n  lr: 0.2\n")["run"] == {
        "lr": 0.2,
        "damping": 1,
    }


def test_a_key_given_twice_names_both_lines(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("optimizer:\n  lr: 0.1\n  damping: 1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"sweep.yaml: malformed YAML at line 4.*'lr' is given twice.*lines 2 and 4"):
        parse_yaml(path)


def test_aliases_that_expand_past_the_limit_are_refused_before_construction():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(5)
    )
    assert 10**6 > MAX_YAML_NODES
    with pytest.raises(Exception, match=f"expand to more than {MAX_YAML_NODES:,} values"):
        load_yaml_text(bomb)


def test_a_fifo_or_a_folder_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(ConfigError, match="not a regular file"):
            parse_yaml(path)


def test_config_errors_are_the_users_to_fix():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
