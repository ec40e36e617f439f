"""Plugins: a user's module that registers suites, strategies and balancing methods.

A plugin is an ordinary Python module that uses the registries' decorators
(``@SUITES.register("name")``, ``@STRATEGIES.register(...)``, ``@METHODS.register(...)``). MTL Lab
imports it from two places:

* ``$MTL_LAB_PLUGINS``: comma-separated module names (``my_lab_plugin``) or paths of ``.py`` files
  (``~/plugins/mine.py``; a relative path is read from the current folder);
* the entry-point group ``mtl_lab.plugins`` of installed distributions, e.g. in a ``pyproject.toml``::

      [project.entry-points."mtl_lab.plugins"]
      mine = "my_lab_plugin"            # a module, or "my_lab_plugin:setup" (a function, called)

The CLI, the dashboard and every worker process call :func:`load_plugins` when they start. Every
entry a plugin registers remembers it (:meth:`mtl_core.registry.Registry.origin`), and every run
records the loaded plugins with their versions (:func:`run_record`). A plugin that fails to import is
logged once and listed in :attr:`PluginReport.failed`; everything else keeps working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mtl_core.registry import Origin, Registry, collecting_registrations
from mtl_core.settings import settings

__all__ = [
    "ENTRY_POINT_GROUP",
    "Plugin",
    "PluginFailure",
    "PluginReport",
    "load_plugins",
    "loaded_plugins",
    "plugin_entries",
    "resolve_plugin_paths",
    "run_record",
    "unload_plugins",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mtl_lab.plugins"


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin: its name, module, version, where it was named (``MTL_LAB_PLUGINS`` or
    ``entry point``) and the entries it registered (``"suite:name"``, ``"strategy:name"``, …)."""

    name: str
    module: str
    version: str | None
    source: str
    entries: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "version": self.version, "source": self.source,
                "entries": list(self.entries)}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, with a one-line reason."""

    name: str
    source: str
    error: str

    def message(self) -> str:
        return f"plugin {self.name} ({self.source}) was not loaded: {self.error}"


@dataclass(frozen=True)
class PluginReport:
    """Every plugin this process loaded, and those that failed."""

    loaded: tuple[Plugin, ...] = ()
    failed: tuple[PluginFailure, ...] = field(default=())


_lock = threading.RLock()
#: (source, spec) → its outcome: each plugin is imported (or fails) once per process.
_outcomes: dict[tuple[str, str], Plugin | PluginFailure] = {}


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def resolve_plugin_paths(text: str) -> str:
    """``$MTL_LAB_PLUGINS``'s text with its file paths made absolute, for processes started elsewhere."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    return ",".join(str(Path(item).expanduser().resolve()) if _is_path(item) else item for item in items)


def _import_path(spec: str) -> ModuleType:
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path:
        return existing
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # so that its classes pickle and its dataclasses resolve their module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _distribution_version(module_name: str) -> str | None:
    top = module_name.split(".")[0]
    for distribution in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _version(module: ModuleType | None, distribution_version: str | None) -> str | None:
    if distribution_version:
        return distribution_version
    value = getattr(module, "__version__", None) if module is not None else None
    return str(value) if value is not None else None


def _load_one(name: str, source: str, load: Callable[[], ModuleType | None],
              distribution_version: Callable[[ModuleType | None], str | None]) -> Plugin | PluginFailure:
    """Import one plugin, noting the entries it registers; any exception becomes a failure."""
    with collecting_registrations() as registered:
        try:
            module = load()
            failure = None
        except (Exception, SystemExit) as exc:  # a broken plugin must not break the lab
            failure = exc
    if failure is not None:
        _unregister(registered)
        exc = failure
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        log.info("plugin %s (%s) was not loaded: %s", name, source, error)  # the caller reports it
        log.debug("%s", "".join(traceback.format_exception(exc)))
        return PluginFailure(name, source, error)
    module_name = module.__name__ if module is not None else name
    origin = Origin(plugin=name, module=module_name, version=_version(module, distribution_version(module)))
    for registry, entry in registered:
        registry.set_origin(entry, origin)
    log.info("plugin %s %s loaded (%d entries)", name, origin.version or "", len(registered))
    return Plugin(name, module_name, origin.version, source,
                  tuple(f"{registry.family}:{entry}" for registry, entry in registered))


def _unregister(registered: Iterable[tuple[Registry[Any], str]]) -> None:
    """Take back what a plugin registered before it failed, so that no half of it stays."""
    for registry, entry in registered:
        try:
            registry.unregister(entry)
        except KeyError:
            pass


def _from_environment(spec: str) -> Plugin | PluginFailure:
    if _is_path(spec):
        name = Path(spec).stem
        return _load_one(name, "MTL_LAB_PLUGINS", lambda: _import_path(spec),
                         lambda module: None)
    return _load_one(spec, "MTL_LAB_PLUGINS", lambda: importlib.import_module(spec),
                     lambda module: _distribution_version(module.__name__) if module is not None else None)


def _from_entry_point(entry_point: importlib.metadata.EntryPoint) -> Plugin | PluginFailure:
    def load() -> ModuleType | None:
        loaded = entry_point.load()
        if isinstance(loaded, ModuleType):
            return loaded
        if callable(loaded):
            loaded()
        return sys.modules.get(entry_point.module)

    version = entry_point.dist.version if entry_point.dist is not None else None
    return _load_one(entry_point.name, "entry point", load, lambda module: version)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    try:
        return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    except Exception as exc:  # broken metadata of some distribution
        log.warning("could not read the %s entry points: %s", ENTRY_POINT_GROUP, exc)
        return []


def _ensure_registries() -> None:
    """Import the registries first, so that a plugin's decorators find the built-in entries."""
    from mtl_core import balancing, strategies, suites  # noqa: F401


def load_plugins(environ: Mapping[str, str] | None = None) -> PluginReport:
    """Import the plugins named by ``$MTL_LAB_PLUGINS`` (of ``environ``, default the process's) and by
    the ``mtl_lab.plugins`` entry points, each once per process, and return every outcome so far.
    A plugin that fails is logged once and listed in :attr:`PluginReport.failed`; it never raises
    (a bad ``MTL_LAB_PLUGINS`` value cannot happen: any text is a list of names). With no plugin
    named anywhere it imports nothing (no torch), so that quick commands stay quick."""
    wanted: list[tuple[str, str, Callable[[], Plugin | PluginFailure]]] = []
    for spec in settings(environ).plugins:
        wanted.append(("MTL_LAB_PLUGINS", spec, lambda spec=spec: _from_environment(spec)))
    for entry_point in _entry_points():
        wanted.append(("entry point", entry_point.value, lambda ep=entry_point: _from_entry_point(ep)))
    with _lock:
        for source, spec, load in wanted:
            key = (source, spec)
            if key not in _outcomes:
                _ensure_registries()
                _outcomes[key] = load()
        return _report()


def unload_plugins() -> None:
    """Forget every plugin: unregister its entries and drop its module, so that the next
    :func:`load_plugins` imports it again (for tests)."""
    from mtl_core.balancing import METHODS
    from mtl_core.strategies import STRATEGIES
    from mtl_core.suites import SUITES

    registries = {registry.family: registry for registry in (SUITES, STRATEGIES, METHODS)}
    with _lock:
        for outcome in _outcomes.values():
            if isinstance(outcome, Plugin):
                for entry in outcome.entries:
                    family, name = entry.split(":", 1)
                    if family in registries and name in registries[family].names():
                        registries[family].unregister(name)
                sys.modules.pop(outcome.module, None)
        _outcomes.clear()


def _report() -> PluginReport:
    outcomes = list(_outcomes.values())
    return PluginReport(tuple(o for o in outcomes if isinstance(o, Plugin)),
                        tuple(o for o in outcomes if isinstance(o, PluginFailure)))


def loaded_plugins() -> tuple[Plugin, ...]:
    """The plugins this process loaded so far (without loading any)."""
    with _lock:
        return _report().loaded


def plugin_entries(config: Any) -> dict[str, dict[str, Any]]:
    """The entries of a run's ``config`` (suite, strategy, method) that came from a plugin:
    ``{"suite": {"name": …, "plugin": …, "module": …, "version": …}, …}``."""
    from mtl_core.balancing import METHODS
    from mtl_core.strategies import STRATEGIES
    from mtl_core.suites import SUITES

    used: dict[str, dict[str, Any]] = {}
    for key, registry in (("suite", SUITES), ("strategy", STRATEGIES), ("method", METHODS)):
        name = getattr(config, key, None)
        origin = registry.origin(name) if isinstance(name, str) else None
        if origin is not None:
            used[key] = {"name": name, **origin.to_dict()}
    return used


def run_record(config: Any) -> dict[str, Any]:
    """What a run records about plugins (in its info and its result): every plugin loaded in its
    process (name, module, version) and which of its own entries came from one; nothing when no
    plugin is loaded."""
    if not loaded_plugins():
        return {}
    return {
        "plugins": [{"name": p.name, "module": p.module, "version": p.version} for p in loaded_plugins()],
        "plugin_entries": plugin_entries(config),
    }
