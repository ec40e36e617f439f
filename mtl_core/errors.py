"""Error types shared by the engine, the CLI and the dashboard.

Every error a user can cause carries a message that names the field, what was expected and what
came, so that the CLI can print it on one line and the dashboard can show it without a traceback.
"""

from __future__ import annotations

__all__ = ["MTLError", "ConfigError"]


class MTLError(Exception):
    """Base class of the engine's own errors."""


class ConfigError(MTLError, ValueError):
    """A configuration value is invalid.

    ``field`` names the offending setting (dotted for nested options, e.g. ``suite_options.p_in``).
    """

    def __init__(self, field: str, expected: str, got: object) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(f"`{field}` must be {expected}, got {got!r}")
