"""The run store, the catalogue of suites, strategies and methods, and the worker pool.

Run-store connections: SQLite connections belong to one thread, and Streamlit runs each rerun in a
new thread, so :func:`store` keeps one :class:`~mtl_core.runs.store.RunStore` per live thread and closes
those of threads that have ended.

Torch: the registries of suites, strategies and balancing methods import it (their modules define
``torch.nn`` models), so they are imported lazily, by :func:`catalog` and :func:`suite_tasks` only;
:func:`warm_up` builds the catalogue in a background thread when a session opens.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtl_core.plugins import load_plugins
from mtl_core.runs import workers
from mtl_core.runs.ray_support import RaySetupError, executor_problem
from mtl_core.runs.store import RunStore, StoreDamagedError, StoreError, default_store_path, lab_home
from mtl_core.settings import SettingError, settings

__all__ = [
    "StoreError",
    "AUTOSTART_ENV",
    "autostart",
    "store",
    "store_path",
    "check_store",
    "recover_interrupted",
    "store_problem",
    "catalog",
    "plugin_problems",
    "forget_suites",
    "warm_up",
    "suite_tasks",
    "ensure_workers",
    "keep_workers_ready",
    "executor_warning",
    "pool_info",
]

#: Set to ``0`` to stop the dashboard from starting the worker pool (runs are only queued; a pool
#: started later, e.g. ``python -m mtl_core worker``, picks them up). Tests and benchmarks use it.
AUTOSTART_ENV = "MTL_LAB_APP_AUTOSTART"


# --- the run store -----------------------------------------------------------------------------------
_stores: dict[threading.Thread, RunStore] = {}
_stores_lock = threading.Lock()


def store_path() -> Path:
    """The run store file of the current ``$MTL_LAB_HOME``."""
    return default_store_path().absolute()


def store() -> RunStore:
    """The run store of ``$MTL_LAB_HOME`` for the calling thread (raises :class:`StoreError` when the
    file is not a usable run store)."""
    path = store_path()
    thread = threading.current_thread()
    with _stores_lock:
        for other in [t for t in _stores if not t.is_alive()]:
            _stores.pop(other).close()
        current = _stores.get(thread)
        if current is not None and current.path == path:
            return current
        if current is not None:
            current.close()
        current = _stores[thread] = RunStore(path)
        return current


def check_store() -> str | None:
    """None when the run store opens and its runs read, else the reason it does not (a sentence, for
    the page). Counting the runs reads the runs table, so damaged pages there show on every page."""
    try:
        store().count_runs()
    except StoreError as exc:
        return store_problem(exc)
    return None


def recover_interrupted() -> list[int]:
    """Mark ``failed`` the runs left ``running`` by a worker process of this machine that is gone, as
    the CLI does (heartbeats are left to the pool); returns their ids. No store file: nothing to do."""
    path = store_path()
    if not path.exists():
        return []
    run_store = RunStore(path)
    try:
        return run_store.recover_interrupted(stale_after=None)
    finally:
        run_store.close()


def store_problem(exc: StoreError) -> str:
    """What a page says when the run store fails: one sentence naming the file and what to do."""
    if isinstance(exc, StoreDamagedError):
        return str(exc)  # already says which file and what to do
    return f"The run store cannot be used: {exc}"


# --- catalogue of suites, strategies and methods (imports torch, once) ------------------------------
_catalog: dict[str, dict[str, dict[str, Any]]] | None = None
_catalog_lock = threading.Lock()
_catalog_suites_stamp: tuple[str, int | None] | None = None  # the user-suites folder the catalogue saw
_catalog_plugins: tuple[str, ...] = ()  # the plugins loaded when the catalogue was built


def catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """``{"suites": {name: describe()}, "strategies": {...}, "methods": {...}}`` of every registered
    entry, computed once per process. The first call imports the registries (and torch).

    The suites entry follows the user suites (CSV imports in ``$MTL_LAB_HOME/suites``): whenever that
    folder changed (one ``stat`` per call), the user suites are scanned again and the suites described
    anew, so a suite saved by the Your-data page or by ``suites add-csv`` shows up at once.

    The plugins (``$MTL_LAB_PLUGINS``, ``mtl_lab.plugins`` entry points) are loaded first; each entry's
    ``plugin`` is its origin (``{"plugin", "module", "version"}``), None for a built-in entry."""
    global _catalog, _catalog_suites_stamp, _catalog_plugins
    with _catalog_lock:
        plugins = tuple(plugin.name for plugin in load_plugins().loaded)
        stamp = _user_suites_stamp()
        if _catalog is None or plugins != _catalog_plugins:
            from mtl_core.balancing import METHODS
            from mtl_core.strategies import STRATEGIES

            _catalog = {
                "suites": _described_suites(),
                "strategies": _described(STRATEGIES),
                "methods": _described(METHODS),
            }
            _catalog_plugins = plugins
        elif stamp != _catalog_suites_stamp:
            _catalog = {**_catalog, "suites": _described_suites()}
        _catalog_suites_stamp = stamp
        return _catalog


def _user_suites_stamp() -> tuple[str, int | None]:
    """The user-suites folder and its modification time: saving, replacing or removing a suite renames
    a folder inside it, which changes the time (None while the folder does not exist)."""
    folder = lab_home() / "suites"
    try:
        return str(folder.absolute()), folder.stat().st_mtime_ns
    except OSError:
        return str(folder.absolute()), None


def _described_suites() -> dict[str, dict[str, Any]]:
    """Every registered suite's ``describe()``, after the user suites of ``$MTL_LAB_HOME`` were
    scanned again (imports the suite registry, and torch)."""
    from mtl_core.suites import SUITES
    from mtl_core.suites.user_csv import refresh_user_suites

    refresh_user_suites()
    return _described(SUITES)


def _described(registry: Any) -> dict[str, dict[str, Any]]:
    """``describe()`` of every entry of ``registry`` by name, with ``plugin``: where it came from."""
    described = {}
    for name, cls in sorted(registry.items()):
        origin = registry.origin(name)
        described[name] = {**cls.describe(), "plugin": origin.to_dict() if origin is not None else None}
    return described


def plugin_problems() -> list[str]:
    """One line per plugin that failed to load, for a warning on every page (loads the plugins first,
    each once per process: without any plugin named this imports nothing)."""
    return [failure.message() for failure in load_plugins().failed]


def forget_suites() -> None:
    """Make the next :func:`catalog` call describe the suites again (a user suite was saved or removed)."""
    global _catalog_suites_stamp
    with _catalog_lock:
        _catalog_suites_stamp = None


def warm_up() -> None:
    """Build the catalogue in a background thread (the torch import takes seconds)."""
    if _catalog is None:
        threading.Thread(target=catalog, name="mtl-app-warm-up", daemon=True).start()


def suite_tasks(suite: str, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The task specs a suite offers with ``options`` (raises :class:`ConfigError` for bad options)."""
    catalog()
    from mtl_core.suites import SUITES

    return [spec.to_dict() for spec in SUITES.get(suite, "suite")(**dict(options or {})).task_specs()]


# --- the worker pool ---------------------------------------------------------------------------------
def autostart() -> bool:
    """Whether the dashboard may start the worker pool: ``$MTL_LAB_APP_AUTOSTART``
    (:attr:`mtl_core.settings.Settings.app_autostart`) is not ``0``/``false``/``no``/``off``; any other
    value counts as on, as it always has."""
    try:
        return settings().app_autostart
    except SettingError:
        return True


def ensure_workers(always: bool = False) -> bool:
    """Start the worker pool unless one runs: always when ``always`` (a session opens), otherwise only
    when runs wait in the queue or are marked running with no pool (a pool that died: the new one
    fails them as interrupted when it starts). Returns True if a pool was started. Does nothing when
    disabled by ``$MTL_LAB_APP_AUTOSTART=0``."""
    if not autostart():
        return False
    home = lab_home()
    if workers.pool_running(home):
        return False
    if not always and store().count_runs(("queued", "running")) == 0:
        return False
    return workers.ensure_pool(home) is not None


def keep_workers_ready() -> bool:
    """A page of the app is open: tell the pool, which then keeps a worker with PyTorch loaded and does
    not exit idle (:func:`mtl_core.runs.workers.note_page_open`), and start one when none runs, so that
    a run queued from the page starts at once. Called on every page view and by the sidebar every few
    seconds. Returns True if a pool was started; does nothing when disabled by
    ``$MTL_LAB_APP_AUTOSTART=0``."""
    if not autostart():
        return False
    workers.note_page_open(lab_home())
    try:
        return ensure_workers(always=True)
    except (SettingError, RaySetupError):
        return False  # executor settings that cannot work: the page says so (executor_warning)


def executor_warning() -> str | None:
    """One sentence when queued runs cannot start because of the executor: settings that cannot work
    (``MTL_LAB_EXECUTOR`` unknown; with ``ray``, ``MTL_LAB_RAY_ADDRESS`` malformed or Ray not installed),
    or a Ray cluster the pool cannot reach (the pool keeps trying and says why in ``pool.json``). None
    when nothing is wrong. Cheap: no Ray import, no network."""
    problem = executor_problem()
    if problem is not None:
        return problem
    error = (workers.pool_status(lab_home()) or {}).get("error")
    if error:
        return (f"Queued runs wait: the worker pool {error}. It tries again every few seconds; "
                "nothing queued is lost.")
    return None


def pool_info() -> dict[str, Any] | None:
    """The running pool (pid, workers with their runs), or None."""
    return workers.pool_status(lab_home())
