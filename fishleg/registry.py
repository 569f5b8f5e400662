"""One registry type for every extension point: Q structures and likelihoods by name,
layer adapters by module type, workloads (in tuning) by name. Filled by decorators, so a
user extends the library without touching the code that looks things up."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def _name(key: object) -> str:
    return getattr(key, "__qualname__", None) or str(key)


class Registry(Generic[K, T]):
    """Keys → items. `what` names the kind of key in error messages (e.g. "q_structure")."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[K, T] = {}

    def register(self, *keys: K) -> Callable[[T], T]:
        """Decorator: make the decorated object available under each of `keys`."""

        def wrap(item: T) -> T:
            for key in keys:
                self._items[key] = item
            return item

        return wrap

    @contextlib.contextmanager
    def scoped(self) -> Iterator[Registry[K, T]]:
        """Registrations made inside are undone on leaving: a test's, or a plugin tried in one
        run, leave the registry as they found it."""
        saved = dict(self._items)
        try:
            yield self
        finally:
            self._items.clear()
            self._items.update(saved)

    def get(self, key: K) -> T | None:
        """The item of `key`, or None."""
        return self._items.get(key)

    def __getitem__(self, key: K) -> T:
        if key not in self._items:
            raise ValueError(f"unknown {self.what} {_name(key)!r}; allowed: {self.names()}")
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def names(self) -> list[str]:
        """The keys as sorted names, for messages."""
        return sorted(_name(k) for k in self._items)
