"""`key=value` overrides after a config file on the command line, as Hydra, W&B and Ray users
expect: `fishleg-tune search cifar.yaml resources.gpu=0 training.epochs=2`.

A key is the dotted path of a key in the file (`space.optimizer.lr.high` for a searched
parameter's range); a value is parsed as YAML (`2`, `0.5`, `true`, `[16, 32]`). Keys are
checked against the file's schema before anything else, with a close match where there is
one; the values then go through the same validation as the file's own."""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from tuning.errors import ConfigError
from tuning.yaml_files import load_yaml_text

__all__ = [
    "Override",
    "apply_overrides",
    "close_key",
    "option_overrides",
    "parse_overrides",
    "set_dotted",
    "settable_keys",
]

SPACE = "space"


@dataclass(frozen=True)
class Override:
    """One `key=value`; `shown` is how the user wrote it (`--num-samples 4` for an alias)."""

    key: str
    value: Any
    shown: str

    @property
    def text(self) -> str:
        """The `key=value` form, as a sweep folder records it."""
        return f"{self.key}={yaml.safe_dump(self.value, default_flow_style=True).strip().removesuffix('...').strip()}"


def parse_overrides(items: Sequence[str], source: str) -> list[Override]:
    """`KEY=VALUE` strings → overrides; anything else is a ConfigError naming it."""
    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"{source}: {item!r} is not an override; after the file give KEY=VALUE with KEY a dotted key "
                "of the file, e.g. training.epochs=2 or resources.gpu=0."
            )
        try:
            value = load_yaml_text(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: override {item!r}: the value is not YAML ({exc}).") from None
        out.append(Override(key, value, item))
    return out


def _members(annotation: Any) -> list[type[BaseModel]]:
    args = typing.get_args(annotation) or (annotation,)
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def _submodel(annotation: Any, value: Any) -> type[BaseModel] | None:
    """The model a field's value validates as (a tagged union's member chosen by the value's
    `name`, the first member without one), or None for a plain value."""
    members = _members(annotation)
    if len(members) <= 1:
        return members[0] if members else None
    name = value.get("name") if isinstance(value, dict) else None
    for member in members:
        tag = member.model_fields.get("name")
        if tag is not None and tag.default == name:
            return member
    return members[0]


def _keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> tuple[list[str], list[str]]:
    """(every settable dotted key of `model` given `data`, the prefixes under which any key goes:
    the options of a workload or training function, which validate their own)."""
    keys: list[str] = []
    free: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        value = data.get(name) if isinstance(data, dict) else None
        origin = typing.get_origin(field.annotation)
        if origin is dict:
            value_type = typing.get_args(field.annotation)[1]
            members = _members(value_type)
            if not members:
                free.append(path + ".")
                continue
            for entry in value or {}:
                keys.extend(f"{path}.{entry}.{f}" for f in members[0].model_fields)
            continue
        sub = _submodel(field.annotation, value)
        if sub is None:
            keys.append(path)
        elif sub.model_config.get("extra") == "allow":
            keys.append(path)
            free.append(path + ".")
        else:
            sub_keys, sub_free = _keys(sub, value if isinstance(value, dict) else {}, path + ".")
            keys.extend(sub_keys)
            free.extend(sub_free)
    return keys, free


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """data['a']['b'] = value for dotted 'a.b', creating mappings on the way (where a key is
    missing or empty)."""
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {key!r} is not a mapping in the config")
    node[leaf] = value


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    """`set_dotted`, where a key under `space:` names a parameter whose name has dots in it."""
    space = data.get(SPACE)
    if key.startswith(SPACE + ".") and isinstance(space, dict):
        param, _, field = key[len(SPACE) + 1 :].rpartition(".")
        if param in space:
            space[param] = {**space[param], field: value}
            return
    set_dotted(data, key, value)


def settable_keys(model: type[BaseModel], data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(every settable dotted key of `model` given the file's `data`, the prefixes under which
    any key goes: a workload's or training function's own options)."""
    return _keys(model, data)


def close_key(key: str, model: type[BaseModel], data: dict[str, Any]) -> str | None:
    """The settable dotted key of `model` (given the file's `data`) that `key` most likely
    misspells, if one is close."""
    close = difflib.get_close_matches(key, _keys(model, data)[0], n=1, cutoff=0.6)
    return close[0] if close else None


def option_overrides(options: dict[str, Any], keys: dict[str, str]) -> list[Override]:
    """The command-line options that stand for a key (`--epochs 2` for `training.epochs=2`), for
    those given (not None), named in errors as the user typed them. keys: option → dotted key."""
    return [
        Override(key, options[option], f"--{option.replace('_', '-')} {options[option]}")
        for option, key in keys.items()
        if options.get(option) is not None
    ]


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[Override], model: type[BaseModel], source: str
) -> dict[str, Any]:
    """A copy of the file's `data` with the overrides set, each key checked against `model`
    (the sweep file's or run config's schema); a key the sweep's `space:` samples is refused,
    since the sampled value would replace it in every trial."""
    data = copy.deepcopy(data)
    space = data[SPACE] if isinstance(data.get(SPACE), dict) else {}
    for override in overrides:
        if override.key in space:
            raise ConfigError(
                f"{source}: override {override.shown!r}: {override.key} is sampled by the sweep's space:, so every "
                f"trial would replace the value; change its range instead (space.{override.key}.low=…, .high=…, "
                f".choices=[…]), or remove it from space: in the file to fix it."
            )
        keys, free = _keys(model, data)
        if override.key not in keys and not override.key.startswith(tuple(free)):
            close = difflib.get_close_matches(override.key, keys, n=1, cutoff=0.6)
            section, _, _ = override.key.rpartition(".")
            siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == section]
            hint = f"did you mean {close[0]}? " if close else ""
            allowed = f"keys of {section or 'the file'}: {', '.join(siblings)}" if siblings else "see --dry-run"
            raise ConfigError(f"{source}: override {override.shown!r}: unknown key {override.key!r}; {hint}{allowed}.")
        _name_union_section(data, override.key.split(".")[0], model)
        _set(data, override.key, override.value)
    return data


def _name_union_section(data: dict[str, Any], head: str, model: type[BaseModel]) -> None:
    """A section the file leaves out whose type is a tagged union (`optimizer:`) gets the name
    of the member it defaults to, so that `optimizer.lr=0.01` alone still says which one."""
    field = model.model_fields.get(head)
    if field is None or len(_members(field.annotation)) < 2:
        return
    section = data.get(head) if isinstance(data.get(head), dict) else {}
    if "name" not in section:
        member = _submodel(field.annotation, section)
        data[head] = {"name": member.model_fields["name"].default, **section}
