"""Every ``MTL_LAB_*`` environment variable, parsed in one place.

:func:`settings` returns a frozen :class:`Settings` over a snapshot of the environment; each property
parses its variable when read, so a bad value fails only the feature that needs it, always with one
message style (:class:`SettingError`: "`MTL_LAB_WORKERS` must be a positive integer, got 'many'").
:data:`VARIABLES` describes every variable (meaning, default, example): the README's table is
checked against it.

This module imports neither torch nor streamlit: the app, the CLI and the worker processes all read
their settings here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mtl_core.errors import ConfigError

__all__ = ["SettingError", "Settings", "Variable", "VARIABLES", "settings"]


class SettingError(ConfigError):
    """An environment variable holds a value MTL Lab cannot use; ``field`` is the variable's name."""


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it sets, its default and an example value."""

    name: str
    meaning: str
    default: str
    example: str


VARIABLES: tuple[Variable, ...] = (
    Variable("MTL_LAB_HOME", "data folder: run store (runs, studies), user suites, logs, limits file",
             "`~/.mtl_lab`", "`/srv/mtl_lab`"),
    Variable("MTL_LAB_WORKERS", "worker processes of an automatically started pool", "number of cores", "`2`"),
    Variable("MTL_LAB_POOL_IDLE_EXIT", "seconds an automatically started pool waits for work before it exits "
             "(`0`: never)", "`60`", "`600`"),
    Variable("MTL_LAB_EXECUTOR", "where queued runs are trained: `local` (the worker pool), `serial` (in the "
             "submitting process) or `ray` (a Ray cluster, see *Running on a Ray cluster*)",
             "`local`", "`ray`"),
    Variable("MTL_LAB_RAY_ADDRESS", "with `MTL_LAB_EXECUTOR=ray`: the Ray cluster, `auto` (the cluster this "
             "machine joined), `HOST:PORT` (its head node) or `ray://HOST:PORT` (Ray Client); the CLI's "
             "`--address` overrides it", "none: a local Ray with this machine's cores", "`auto`"),
    Variable("MTL_LAB_PLUGINS", "plugins to load: comma-separated module names or paths of `.py` files "
             "(besides the installed `mtl_lab.plugins` entry points)", "none",
             "`examples/mtl_lab_example_plugin.py`"),
    Variable("MTL_LAB_LIMITS", "presenter limits file (it must exist)", "`$MTL_LAB_HOME/limits.yaml`",
             "`/srv/limits.yaml`"),
    Variable("MTL_LAB_LESSONS", "folder of lesson files", "the packaged lessons", "`~/my_lessons`"),
    Variable("MTL_LAB_MAX_CSV_MB", "largest CSV file an import accepts, in MB (the page's uploader is also "
             "capped by `server.maxUploadSize` in `.streamlit/config.toml`, 50: raise both together)",
             "`50`", "`200`"),
    Variable("MTL_LAB_MAX_CSV_ROWS", "most rows a CSV import accepts", "`1000000`", "`50000`"),
    Variable("MTL_LAB_MAX_CSV_COLUMNS", "most columns a CSV import accepts", "`1000`", "`200`"),
    Variable("MTL_LAB_LIVE_REFRESH", "seconds between refreshes of a live run view, clamped to 0.5–60; it grows "
             "by itself with the number of live viewers", "`1`", "`3`"),
    Variable("MTL_LAB_APP_AUTOSTART", "`0`/`false`/`no`/`off`: the app does not start a worker pool (tests, or "
             "a separate `worker`)", "`1`", "`0`"),
    Variable("MTL_LAB_PRESENTER_PASSCODE", "passcode that unlocks the presenter in the app's sidebar; when set, "
             "each participant sees and manages only their own runs and suites, and the presenter all of them "
             "(required to serve beyond this machine)", "none: single user, everyone manages everything",
             "`a-long-phrase`"),
    Variable("MTL_LAB_APP_TIMINGS", "file the app appends one JSON line per page render to (what "
             "`benchmarks/app_render.py` reads)", "off", "`/tmp/timings.jsonl`"),
)

_NAMES = frozenset(variable.name for variable in VARIABLES)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _number(text: str, name: str, expected: str, accept: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not accept(value):
        raise SettingError(name, expected, text)
    return value


@dataclass(frozen=True)
class Settings:
    """MTL Lab's settings, read from ``environ`` (a snapshot of ``os.environ`` by default)."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def text(self, name: str) -> str | None:
        """The stripped value of the variable ``name``; None when unset or blank."""
        if name not in _NAMES:
            raise KeyError(f"{name} is not an MTL Lab setting (see mtl_core.settings.VARIABLES)")
        value = self.environ.get(name, "").strip()
        return value or None

    def _path(self, name: str) -> Path | None:
        text = self.text(name)
        return Path(text).expanduser() if text is not None else None

    def _positive(self, name: str, default: float, integer: bool = False) -> float:
        text = self.text(name)
        if text is None:
            return default
        if integer:
            return _number(text, name, "a positive integer", lambda v: v > 0 and v.is_integer())
        return _number(text, name, "a positive number", lambda v: v > 0)

    # --- the engine -------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """``$MTL_LAB_HOME``, else ``~/.mtl_lab``."""
        return self._path("MTL_LAB_HOME") or Path.home() / ".mtl_lab"

    @property
    def workers(self) -> int:
        """``$MTL_LAB_WORKERS``, else the number of CPU cores."""
        return int(self._positive("MTL_LAB_WORKERS", os.cpu_count() or 1, integer=True))

    @property
    def pool_idle_exit(self) -> float:
        """``$MTL_LAB_POOL_IDLE_EXIT`` seconds (0: never), else 60."""
        text = self.text("MTL_LAB_POOL_IDLE_EXIT")
        if text is None:
            return 60.0
        return _number(text, "MTL_LAB_POOL_IDLE_EXIT", "a number of seconds ≥ 0", lambda v: v >= 0)

    @property
    def executor(self) -> str:
        """``$MTL_LAB_EXECUTOR``, else ``local``; a name the executor registry does not hold raises
        :class:`SettingError` naming the allowed ones."""
        name = self.text("MTL_LAB_EXECUTOR")
        if name is None:
            return "local"
        # Imported here: the registry's module reads these settings (neither imports torch or Ray).
        from mtl_core.runs.executors import EXECUTORS

        if name not in EXECUTORS:
            raise SettingError("MTL_LAB_EXECUTOR", f"one of {', '.join(sorted(EXECUTORS.names()))}", name)
        return name

    @property
    def ray_address(self) -> str | None:
        """``$MTL_LAB_RAY_ADDRESS`` normalised (:func:`mtl_core.runs.ray_support.parse_address`), else
        None (a local Ray); a malformed one raises :class:`SettingError` naming what is allowed."""
        text = self.text("MTL_LAB_RAY_ADDRESS")
        if text is None:
            return None
        from mtl_core.runs.ray_support import ALLOWED_ADDRESSES, RaySetupError, parse_address

        try:
            return parse_address(text)
        except RaySetupError as exc:
            raise SettingError("MTL_LAB_RAY_ADDRESS", ALLOWED_ADDRESSES, text) from exc

    @property
    def plugins(self) -> tuple[str, ...]:
        """``$MTL_LAB_PLUGINS``: module names or ``.py`` paths, comma-separated (empty items dropped)."""
        text = self.text("MTL_LAB_PLUGINS") or ""
        return tuple(item.strip() for item in text.split(",") if item.strip())

    @property
    def limits_file(self) -> Path | None:
        """``$MTL_LAB_LIMITS`` when set (its existence is checked by :mod:`mtl_core.workshop.limits`)."""
        return self._path("MTL_LAB_LIMITS")

    @property
    def lessons_dir(self) -> Path | None:
        """``$MTL_LAB_LESSONS`` when set."""
        return self._path("MTL_LAB_LESSONS")

    @property
    def max_csv_mb(self) -> float:
        return self._positive("MTL_LAB_MAX_CSV_MB", 50.0)

    @property
    def max_csv_rows(self) -> int:
        return int(self._positive("MTL_LAB_MAX_CSV_ROWS", 1_000_000, integer=True))

    @property
    def max_csv_columns(self) -> int:
        return int(self._positive("MTL_LAB_MAX_CSV_COLUMNS", 1_000, integer=True))

    # --- the app ----------------------------------------------------------------------------------
    @property
    def live_refresh(self) -> float:
        """``$MTL_LAB_LIVE_REFRESH`` seconds clamped to [0.5, 60], else 1."""
        text = self.text("MTL_LAB_LIVE_REFRESH")
        if text is None:
            return 1.0
        value = _number(text, "MTL_LAB_LIVE_REFRESH", "a number of seconds", lambda v: True)
        return min(60.0, max(0.5, value))

    @property
    def app_autostart(self) -> bool:
        """``$MTL_LAB_APP_AUTOSTART`` (1/true/yes/on or 0/false/no/off), else True."""
        text = self.text("MTL_LAB_APP_AUTOSTART")
        if text is None:
            return True
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise SettingError("MTL_LAB_APP_AUTOSTART", f"one of {', '.join(_TRUE + _FALSE)}", text)

    @property
    def presenter_passcode(self) -> str | None:
        """``$MTL_LAB_PRESENTER_PASSCODE`` (stripped); None: single user. Never log or show it."""
        return self.text("MTL_LAB_PRESENTER_PASSCODE")

    @property
    def app_timings(self) -> Path | None:
        """``$MTL_LAB_APP_TIMINGS``: the file page render times are appended to; None: off."""
        return self._path("MTL_LAB_APP_TIMINGS")


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``environ`` (default: the process's environment, read now)."""
    return Settings(dict(os.environ if environ is None else environ))
