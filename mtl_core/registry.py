"""Registries keyed by name: one per family (suites, strategies, balancing methods).

A plugin registers its own entry with ``REGISTRY.register("name")(cls)``; the CLI and the dashboard
read the registries, so a new entry shows up everywhere without touching them. Entries registered
while :mod:`mtl_core.plugins` imports a plugin remember it (:meth:`Registry.origin`).

Entries that live outside the code (user suites in the lab home) are found lazily: a discovery hook
runs when the registry is first read, never when it is imported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mtl_core.errors import ConfigError

__all__ = ["Origin", "Registry", "collecting_registrations"]

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Where a registry entry came from when it is not built in: the plugin's name, its module and
    its version (None when neither its distribution nor its module says)."""

    plugin: str
    module: str
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "module": self.module, "version": self.version}

    def label(self) -> str:
        return f"plugin {self.plugin}" + (f" {self.version}" if self.version else "")


#: While :func:`collecting_registrations` is active: the (registry, name) pairs registered so far.
_collected: ContextVar[list[tuple[Registry[Any], str]] | None] = ContextVar("mtl_registrations", default=None)


@contextmanager
def collecting_registrations() -> Iterator[list[tuple[Registry[Any], str]]]:
    """Collect every (registry, name) registered inside the block (the plugin loader's bookkeeping)."""
    collected: list[tuple[Registry[Any], str]] = []
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)


class Registry(Generic[T]):
    """A name → object mapping with helpful errors for unknown names."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}
        self._lookup_hooks: list[Callable[[str], object]] = []
        self._discovery_hooks: list[Callable[[], object]] = []
        self._discovering = threading.local()

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.family} {name!r} is already registered")
            self._entries[name] = obj
            collected = _collected.get()
            if collected is not None:
                collected.append((self, name))
            return obj

        return decorator

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name`` (for entries that come and go, e.g. user suites)."""
        self._origins.pop(name, None)
        return self._entries.pop(name)

    def set_origin(self, name: str, origin: Origin) -> None:
        """Note that the entry ``name`` came from a plugin (called by :mod:`mtl_core.plugins`)."""
        if name not in self._entries:
            raise KeyError(f"{self.family} {name!r} is not registered")
        self._origins[name] = origin

    def origin(self, name: str) -> Origin | None:
        """The plugin the entry ``name`` came from; None for a built-in entry (or a user suite)."""
        return self._origins.get(name)

    def add_discovery_hook(self, hook: Callable[[], object]) -> None:
        """Call ``hook()`` whenever the registry is read (:meth:`get`, :meth:`names`, :meth:`items`,
        membership, iteration, length) before answering; the hook registers entries found lazily (e.g.
        the user suites of the lab home) and should return at once when it has nothing new to do."""
        self._discovery_hooks.append(hook)

    def _discover(self) -> None:
        if not self._discovery_hooks or getattr(self._discovering, "active", False):
            return  # a hook reading this registry must not run itself again
        self._discovering.active = True
        try:
            for hook in list(self._discovery_hooks):
                hook()
        finally:
            self._discovering.active = False

    def add_lookup_hook(self, hook: Callable[[str], object]) -> None:
        """Call ``hook(name)`` when :meth:`get` misses ``name``, before it gives up; the hook may
        register entries (e.g. a user suite saved by another process since this one started)."""
        self._lookup_hooks.append(hook)

    def get(self, name: str, field: str | None = None) -> T:
        self._discover()
        if name not in self._entries:
            for hook in self._lookup_hooks:
                hook(name)
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                field or self.family, f"one of {', '.join(sorted(self._entries))}", name
            ) from None

    def names(self) -> list[str]:
        self._discover()
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self._discover()
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._discover()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._discover()
        return len(self._entries)
