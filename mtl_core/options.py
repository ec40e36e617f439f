"""Declared, typed options for suites, strategies and balancing methods.

Each registry entry lists its options as :class:`Option` objects. :func:`resolve_options` is the one
place where user-supplied values (from YAML, CLI ``KEY=VALUE`` strings, or the dashboard) are
coerced and checked, with messages that name the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtl_core.errors import ConfigError

__all__ = ["Option", "resolve_options", "parse_cli_value"]

_TYPES = ("int", "float", "bool", "str", "floats", "str_or_none", "int_or_none", "floats_or_none")


@dataclass(frozen=True)
class Option:
    """One option: ``kind`` is one of int, float, bool, str, floats (a list of floats),
    str_or_none, int_or_none, floats_or_none."""

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _TYPES:
            raise ValueError(f"Option kind must be one of {_TYPES}, got {self.kind!r}")

    def describe_expected(self) -> str:
        base = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "floats": "a list of numbers",
            "str_or_none": "a string or null",
            "int_or_none": "an integer or null",
            "floats_or_none": "a list of numbers or null",
        }[self.kind]
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        if self.low is not None and self.high is not None:
            return f"{base} in [{self.low}, {self.high}]"
        if self.low is not None:
            return f"{base} ≥ {self.low}"
        if self.high is not None:
            return f"{base} ≤ {self.high}"
        return base

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "help": self.help,
            "low": self.low,
            "high": self.high,
            "choices": list(self.choices) if self.choices is not None else None,
        }

    def coerce(self, value: Any, field: str) -> Any:
        """Return ``value`` converted to this option's type, or raise :class:`ConfigError`."""
        expected = self.describe_expected()
        kind = self.kind
        if kind.endswith("_or_none"):
            if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
                return None
            kind = kind[: -len("_or_none")]
        if kind == "bool":
            if isinstance(value, bool):
                out: Any = value
            elif isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
                out = True
            elif isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
                out = False
            else:
                raise ConfigError(field, expected, value)
        elif kind == "int":
            out = _to_int(value, field, expected)
        elif kind == "float":
            out = _to_float(value, field, expected)
        elif kind == "str":
            if not isinstance(value, str):
                raise ConfigError(field, expected, value)
            out = value
        else:  # floats
            if isinstance(value, str):
                parts = [p for p in value.replace(" ", "").strip("[]()").split(",") if p]
                value = parts
            if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) == 0:
                raise ConfigError(field, expected, value)
            out = tuple(_to_float(v, field, expected) for v in value)
        if self.choices is not None and out not in self.choices:
            raise ConfigError(field, expected, value)
        for number in out if isinstance(out, tuple) else (out,):
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                if self.low is not None and number < self.low:
                    raise ConfigError(field, expected, value)
                if self.high is not None and number > self.high:
                    raise ConfigError(field, expected, value)
        return out


def _to_int(value: Any, field: str, expected: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(field, expected, value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(field, expected, value)


def _to_float(value: Any, field: str, expected: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(field, expected, value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(field, expected, value) from None
    if not math.isfinite(out):
        raise ConfigError(field, expected, value)
    return out


def resolve_options(
    specs: Sequence[Option], given: Mapping[str, Any] | None, field_prefix: str
) -> dict[str, Any]:
    """Merge ``given`` over the defaults of ``specs``, coercing and checking each value.

    Unknown keys raise :class:`ConfigError` naming the allowed keys.
    """
    given = dict(given or {})
    by_name = {spec.name: spec for spec in specs}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        allowed = ", ".join(by_name) if by_name else "no options"
        raise ConfigError(f"{field_prefix}.{unknown[0]}", f"a known option ({allowed})", unknown[0])
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.name in given:
            out[spec.name] = spec.coerce(given[spec.name], f"{field_prefix}.{spec.name}")
        else:
            out[spec.name] = spec.default
    return out


def parse_cli_value(text: str) -> Any:
    """Keep CLI ``KEY=VALUE`` values as strings; :meth:`Option.coerce` converts them."""
    return text
