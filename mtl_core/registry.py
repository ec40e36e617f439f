"""Registries keyed by name: one per family (suites, strategies, balancing methods).

A plugin registers its own entry with ``REGISTRY.register("name")(cls)``; the CLI and the dashboard
read the registries, so a new entry shows up everywhere without touching them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object mapping with helpful errors for unknown names."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, T] = {}
        self._lookup_hooks: list[Callable[[str], object]] = []

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.family} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name`` (for entries that come and go, e.g. user suites)."""
        return self._entries.pop(name)

    def add_lookup_hook(self, hook: Callable[[str], object]) -> None:
        """Call ``hook(name)`` when :meth:`get` misses ``name``, before it gives up; the hook may
        register entries (e.g. a user suite saved by another process since this one started)."""
        self._lookup_hooks.append(hook)

    def get(self, name: str, field: str | None = None) -> T:
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
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
