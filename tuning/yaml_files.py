"""Reading the YAML files people write and share by hand (sweep files, run configs, exported
configs, `KEY=VALUE` overrides): `yaml.safe_load` with more checks, and errors that name the
file and line. Light to import (no torch), so a command refuses a bad file at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tuning.errors import ConfigError

__all__ = ["MAX_YAML_NODES", "StrictYamlLoader", "load_yaml_text", "parse_yaml"]

MAX_YAML_NODES = 100_000  # a config expands to hundreds; aliases nested ten deep reach 10^10


class StrictYamlLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, for files people share and edit by hand: a key given twice in
    one mapping is an error (YAML keeps the last, and the editor never learns which one ran),
    and so is a document whose aliases expand beyond `MAX_YAML_NODES` nodes (refused before
    anything is built from it, so a 1 KB file cannot hang a command)."""

    def get_single_node(self) -> yaml.Node | None:
        """The document's node graph, checked for its expanded size before construction."""
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {})
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping whose keys are all different (merge keys `<<:` may be overridden)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # the base constructor names an unhashable key
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice in one mapping (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None]) -> int:
    """Nodes in `node`'s tree with every alias expanded, counted once per distinct node (so the
    count is linear in the file); raises a YAMLError past `MAX_YAML_NODES` or on a cycle."""
    key = id(node)
    if key in sizes:
        size = sizes[key]
        if size is None:
            raise yaml.YAMLError(f"an alias refers to the node that contains it (line {node.start_mark.line + 1})")
        return size
    sizes[key] = None
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    else:
        size = 1
    if size > MAX_YAML_NODES:
        raise yaml.YAMLError(
            f"its aliases expand to more than {MAX_YAML_NODES:,} values (line {node.start_mark.line + 1}); "
            "a config is a few hundred"
        )
    sizes[key] = size
    return size


def load_yaml_text(text: str) -> Any:
    """`yaml.safe_load` with `StrictYamlLoader`'s checks."""
    loader = StrictYamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_yaml(path: Path) -> Any:
    """`load_yaml_text` of a file, with errors that name the file and line."""
    if path.exists() and not path.is_file():  # a FIFO nobody writes would block the read forever
        raise ConfigError(f"{path}: not a regular file (a folder, a pipe or a device); give a YAML file.")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror}).") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8.") from None
    try:
        return load_yaml_text(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}.") from None
