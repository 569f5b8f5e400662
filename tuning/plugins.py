"""User code named in a config, by explicit `package.module:function` only (never a bare
module or an expression): workload builders and training functions."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from tuning.errors import ConfigError

__all__ = ["check_callable_as", "import_function", "signature_text"]


def import_function(name: str, where: str) -> Any:
    """The attribute `function` of module `package.module` (imported, not called); `where`
    (e.g. 'sweep.yaml: trainable.name') starts the message of a ConfigError."""
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{where}: {name!r} is not 'package.module:function'.")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot load {name!r} ({type(exc).__name__}: {exc}).") from None


def signature_text(fn: Any) -> str:
    """`fn`'s parameters as text, for an error message."""
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "arguments it does not declare"


def check_callable_as(fn: Any, args: tuple[Any, ...], what: str, expected: str) -> None:
    """`fn` accepts `args` (checked on its signature, not called); otherwise a ConfigError
    '{what} is <what it is>, not {expected}'."""
    try:
        inspect.signature(fn).bind(*args)
    except (TypeError, ValueError):
        kind = "not callable" if not callable(fn) else f"a callable taking {signature_text(fn)}"
        raise ConfigError(f"{what} is {kind}, not {expected}") from None
