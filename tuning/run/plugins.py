"""User code named in a config, by explicit `package.module:function` only (never a bare
module or an expression): workload builders and training functions."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuning.errors import ConfigError, UserCodeError, user_frames

__all__ = ["check_callable_as", "import_function", "local_sources", "signature_text"]


def import_function(name: str, where: str) -> Any:
    """The attribute `function` of module `package.module` (imported, not called); `where`
    (e.g. 'sweep.yaml: trainable.name') starts the message of a ConfigError."""
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{where}: {name!r} is not 'package.module:function'.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        hint = ""
        if exc.name is not None and f"{module_name}.".startswith(f"{exc.name}."):  # the named one, not its import
            hint = (
                f" It is imported as `python -m` would: from the folder the command runs in ({Path.cwd()}), then "
                f"from installed packages; run the command from the folder that holds {top}/ (or {top}.py), or "
                "install the package (pip install -e .)."
            )
        raise ConfigError(f"{where}: cannot load {name!r} ({type(exc).__name__}: {exc}).{hint}") from None
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot load {name!r} ({type(exc).__name__}: {exc}).") from None
    except Exception as exc:  # the module's own code raised as it was imported
        frames = user_frames(traceback.format_exc())
        at = f" at {frames[-1]}" if frames else ""
        raise UserCodeError(
            f"{where}: importing {module_name} raised {type(exc).__name__}: {exc}{at}; fix it in your code."
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError as exc:
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


def local_sources(names: Iterable[str], folder: Path | None = None) -> list[Path]:
    """The top-level packages (folders) and modules (.py files) of the `package.module:function`
    names that are imported from `folder` (default: the current one) rather than installed.

    A local sweep's Ray workers find them as the driver does (Ray puts the driver's folder on
    their path); the other nodes of a cluster do not have them, so a sweep on a cluster ships
    these with Ray's `runtime_env` `py_modules`. Installed packages are left to the nodes'
    own environments."""
    folder = (folder or Path.cwd()).resolve()
    found: list[Path] = []
    for name in names:
        top = name.partition(":")[0].split(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        locations = list(spec.submodule_search_locations or [])
        path = Path(locations[0]) if locations else Path(spec.origin or "")
        if path.resolve().parent == folder and path not in found:
            found.append(path)
    return found
