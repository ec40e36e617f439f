"""Presenter limits: caps a workshop host sets on what each participant may queue.

The limits live in a small YAML file — ``$MTL_LAB_LIMITS`` if set, else ``$MTL_LAB_HOME/limits.yaml``
(no file: no limits)::

    # limits.yaml
    max_epochs: 100                      # per run (runs stop early; lessons ask for at most 100)
    max_concurrent_runs_per_session: 40  # queued + running runs of one session (owner) at a time
    max_tasks: 6                         # tasks trained together in one run
    max_samples: 5000                    # training rows (the suite's size option: n_samples)

Every key is optional; ``null`` means no cap. Whoever queues runs (the dashboard, the CLI) calls
:func:`check_limits` first: it raises :class:`LimitError` with a message that says which cap, its
value and what the request asked for (never the file's path: participants read it on their pages;
:meth:`LimitError.detail` adds the file, for the server's side). The file is read on every call, so a host
can change it during a workshop without restarting anything.

Counting "concurrent" runs: a session's runs that are ``queued`` or ``running`` in the run store,
plus the ones being queued. A lesson queues all its runs at once (see each lesson's run count).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtl_core._files import replace_text
from mtl_core.config import TrainConfig, parse_yaml
from mtl_core.errors import ConfigError, MTLError
from mtl_core.settings import settings

__all__ = [
    "LIMITS_ENV",
    "LIMITS_FILE",
    "Limits",
    "LimitError",
    "LimitsFileError",
    "limits_path",
    "load_limits",
    "save_limits",
    "check_limits",
]

#: Environment variable naming the limits file (it must exist when set).
LIMITS_ENV = "MTL_LAB_LIMITS"
#: The limits file's name inside ``$MTL_LAB_HOME``.
LIMITS_FILE = "limits.yaml"
_UNFINISHED = ("queued", "running")


class LimitError(MTLError):
    """A request exceeds a presenter limit. The message names the cap, its value and what was asked,
    but not the limits file: it reaches participants' pages, which never show a server path.
    :attr:`source` is that file (None: none), :meth:`detail` the message with it."""

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source

    def detail(self) -> str:
        """The message and the limits file it comes from (for the presenter or the server's log)."""
        return f"{self} Limits file: {self.source}." if self.source else str(self)


class LimitsFileError(MTLError, ValueError):
    """The limits file is unreadable or invalid; the message names the file and the field."""

    def __init__(self, path: Path | str, field: str, expected: str, got: object) -> None:
        self.path = str(path)
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(f"limits file {path}: `{field}` must be {expected}, got {got!r}")


@dataclass(frozen=True)
class Limits:
    """The caps in force (None = no cap) and the file they came from (None = no file)."""

    max_epochs: int | None = None
    max_concurrent_runs_per_session: int | None = None
    max_tasks: int | None = None
    max_samples: int | None = None
    source: str | None = None

    @property
    def active(self) -> bool:
        """Whether any cap is set."""
        return any(getattr(self, name) is not None for name in _FIELDS)

    def describe(self) -> list[str]:
        """One phrase per cap in force, for a page ("at most 40 epochs per run" …)."""
        phrases = {
            "max_epochs": "at most {} epochs per run",
            "max_concurrent_runs_per_session": "at most {} queued or running runs per session",
            "max_tasks": "at most {} tasks per run",
            "max_samples": "at most {} training rows (n_samples) per run",
        }
        return [phrases[name].format(getattr(self, name)) for name in _FIELDS if getattr(self, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = ("max_epochs", "max_concurrent_runs_per_session", "max_tasks", "max_samples")


def limits_path(home: str | os.PathLike[str] | None = None) -> Path | None:
    """The limits file in force: ``$MTL_LAB_LIMITS`` (raises :class:`LimitsFileError` if it names
    no file), else ``<lab home>/limits.yaml`` when it exists, else None."""
    from mtl_core.runs.store import lab_home

    current = settings()
    path = current.limits_file
    if path is not None:
        if not path.is_file():
            raise LimitsFileError(path, LIMITS_ENV, "the path of an existing limits file", current.text(LIMITS_ENV))
        return path
    path = lab_home(home) / LIMITS_FILE
    return path if path.is_file() else None


def load_limits(path: str | os.PathLike[str] | None = None, home: str | os.PathLike[str] | None = None) -> Limits:
    """Read the limits of ``path`` (default :func:`limits_path`); no file gives no limits."""
    resolved = Path(path) if path is not None else limits_path(home)
    if resolved is None:
        return Limits()
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LimitsFileError(resolved, "file", "a readable UTF-8 YAML file", exc.__class__.__name__) from None
    data, problem = parse_yaml(text)
    if problem is not None:
        raise LimitsFileError(resolved, "file", "valid YAML", problem)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise LimitsFileError(resolved, "(top level)", f"a mapping of limits ({', '.join(_FIELDS)})",
                              type(data).__name__)
    return Limits(**_checked_caps(data, resolved), source=str(resolved))


def _checked_caps(values: Mapping[Any, Any], path: Path) -> dict[str, int | None]:
    """``values`` as caps (each a known limit: a positive integer or None); :class:`LimitsFileError`
    naming ``path`` and the first bad key or value."""
    caps: dict[str, int | None] = {}
    for key, value in values.items():
        if key not in _FIELDS:
            raise LimitsFileError(path, str(key), f"a known limit ({', '.join(_FIELDS)})", key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise LimitsFileError(path, str(key), "a positive integer or null", value)
        caps[key] = value
    return caps


def save_limits(values: Mapping[str, int | None], home: str | os.PathLike[str] | None = None) -> Limits:
    """Write the caps ``values`` (each limit a positive integer, or None for no cap; limits not named
    keep no cap) to the limits file in force (``$MTL_LAB_LIMITS``, else ``<lab home>/limits.yaml``),
    atomically, and return them as read back. Raises :class:`LimitsFileError` naming a bad value."""
    import yaml

    from mtl_core.runs.store import lab_home

    target = settings().limits_file or lab_home(home) / LIMITS_FILE
    clean = _checked_caps(values, target)
    text = "# Presenter limits (see the README, Workshops); null = no cap.\n" + yaml.safe_dump(
        {key: clean.get(key) for key in _FIELDS}, sort_keys=False)
    replace_text(target, text)
    return load_limits(target)


def _as_config(config: TrainConfig | Mapping[str, Any], index: int) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    try:
        return TrainConfig.from_dict(config)
    except ConfigError as exc:
        raise ConfigError(f"configs[{index}].{exc.field}", exc.expected, exc.got) from None


def _suite_facts(config: TrainConfig) -> tuple[int, str | None, int | None]:
    """The number of tasks the run trains, the name of its suite's size option
    (:attr:`~mtl_core.suites.base.Suite.size_option`) and that option's value (given or the suite's
    default); None, None for a suite of fixed size. Builds the suite object only (no data)."""
    from mtl_core.suites import make_suite

    suite = make_suite(config.suite, **dict(config.suite_options))
    n_tasks = len(config.tasks) if config.tasks is not None else len(suite.task_specs())
    option = suite.size_option
    samples = suite.settings.get(option) if option is not None else None
    if samples is None:
        return n_tasks, None, None
    return n_tasks, option, int(samples)


def _run_name(index: int, total: int) -> str:
    return "this run" if total == 1 else f"run {index + 1} of {total}"


def check_limits(
    configs: TrainConfig | Mapping[str, Any] | Sequence[TrainConfig | Mapping[str, Any]],
    owner: str | None,
    store: Any = None,
    limits: Limits | None = None,
    home: str | os.PathLike[str] | None = None,
) -> None:
    """Raise :class:`LimitError` if queueing ``configs`` for ``owner`` (a session or user id; None
    = the store's default owner) would break a presenter limit; return None otherwise.

    ``store`` is the run store to count the owner's unfinished runs in (default: the one of
    ``home``); ``limits`` defaults to :func:`load_limits`. A bad limits file raises
    :class:`LimitsFileError`.
    """
    limits = limits if limits is not None else load_limits(home=home)
    if not limits.active:
        return
    if isinstance(configs, (TrainConfig, Mapping)):
        configs = [configs]
    parsed = [_as_config(config, index) for index, config in enumerate(configs)]
    where = ", a presenter limit"  # the file's path stays on the server (LimitError.detail)
    total = len(parsed)
    for index, config in enumerate(parsed):
        name = _run_name(index, total)
        if limits.max_epochs is not None and config.epochs > limits.max_epochs:
            raise LimitError(f"This workshop allows at most {limits.max_epochs} epochs per run (max_epochs{where}); "
                             f"{name} asks for {config.epochs}. Lower the epochs.", limits.source)
        if limits.max_tasks is None and limits.max_samples is None:
            continue
        count, size_option, samples = _suite_facts(config)
        if limits.max_tasks is not None and count > limits.max_tasks:
            raise LimitError(f"This workshop allows at most {limits.max_tasks} tasks per run (max_tasks{where}); "
                             f"{name} trains {count}. Choose fewer tasks.", limits.source)
        if limits.max_samples is not None:
            if samples is not None and samples > limits.max_samples:
                raise LimitError(f"This workshop allows at most {limits.max_samples} training rows per run "
                                 f"(max_samples{where}); {name} asks for {size_option} = {samples}. "
                                 f"Lower {size_option}.", limits.source)
    cap = limits.max_concurrent_runs_per_session
    if cap is not None:
        from mtl_core.runs.store import DEFAULT_OWNER

        if store is None:
            from mtl_core.runs.workers import open_store

            store = open_store(home)
        who = owner or DEFAULT_OWNER
        unfinished = store.count_runs(status=_UNFINISHED, owner=who)
        if unfinished + total > cap:
            have = f"you have {unfinished} queued or running" if unfinished else "you have none queued or running"
            raise LimitError(f"This workshop allows {cap} queued or running runs per session "
                             f"(max_concurrent_runs_per_session{where}): {have}, and this would add {total}. "
                             "Wait for your runs to finish, or cancel some on the Runs page.", limits.source)
