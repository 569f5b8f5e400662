"""Attributes made on first use in the process that uses them and left out when their owner is
pickled: Ray ships callbacks and trackers to other processes, and a console or an MLflow client
does not pickle, while a ledger must be read again where it is used."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

__all__ = ["Transients", "transient"]

T = TypeVar("T")


class transient(functools.cached_property[T]):  # noqa: N801 (a decorator, named like cached_property)
    """A `functools.cached_property` that its owner's pickled state leaves out (the owner
    derives from `Transients`); assigning to it sets the value, as for cached_property."""


class Transients:
    """Pickles without the values of its `transient` attributes."""

    def __getstate__(self) -> dict[str, Any]:
        cls = type(self)
        return {k: v for k, v in self.__dict__.items() if not isinstance(getattr(cls, k, None), transient)}
