"""One registry pattern for what is chosen by name (losses, explainers, metrics, datasets), after timm's
``register_model``: entries register themselves with a decorator, and the registry is the only list of names."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar, overload

from ._names import unknown_name

__all__ = ["Registry", "import_submodules"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one ``kind`` by name: ``@registry.register`` (named after the entry's ``__name__``) or
    ``@registry.register("name")``. As a collection it holds the sorted names, so it reads as its list of names.

    ``load``, if given, runs before the first lookup: it imports the modules whose decorators fill the registry, so
    that they load only when asked for (e.g. the Quantus metrics).
    """

    def __init__(self, kind: str, load: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._load = load

    @overload
    def register(self, entry: str) -> Callable[[T], T]: ...

    @overload
    def register(self, entry: T) -> T: ...

    def register(self, entry):
        """Register ``entry`` under its ``__name__``, or, given a name, return a decorator registering under it.
        A name already registered is refused (ValueError)."""
        if isinstance(entry, str):
            return lambda named: self._add(entry, named)
        return self._add(entry.__name__, entry)

    def _add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered: {self._entries[name]!r}")
        self._entries[name] = entry
        return entry

    def _loaded(self) -> dict[str, T]:
        load, self._load = self._load, None  # once, and not again from inside the imports it makes
        if load is not None:
            try:
                load()
            except BaseException:
                self._load = load
                raise
        return self._entries

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._loaded())

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ValueError with the closest valid name otherwise."""
        entries = self._loaded()
        if name not in entries:
            raise unknown_name(self.kind, name, entries)
        return entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def import_submodules(package: str) -> Callable[[], None]:
    """A ``load`` for :class:`Registry`: import every module of ``package``, whose decorators register entries."""

    def load() -> None:
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")

    return load
