"""Background execution: worker processes that take queued runs from the run store and train them.

The dashboard never trains in its own script thread: it calls :func:`submit`, which validates the
configs, queues them in the :class:`~mtl_core.runs.store.RunStore` and asks an :class:`Executor` to run
them. The store *is* the queue, so a run survives a page reload, and any process can read its
status and metrics.

:class:`LocalProcessExecutor` (the default; the :class:`Executor` interface and its implementations
are in :mod:`mtl_core.runs.executors`) runs a *pool supervisor* process per MTL Lab home:

- started on demand by whoever submits when none is running (:func:`ensure_pool`; it exits after
  ``$MTL_LAB_POOL_IDLE_EXIT`` seconds, default 60, without work), or by hand as a long-lived
  server (``python -m mtl_core worker [--workers N]``);
- while a page of the dashboard is open (:func:`note_page_open`, which the page calls every few
  seconds, touches ``$MTL_LAB_HOME/pool.page``), it keeps one worker with PyTorch loaded and does not
  exit idle, so a run queued from the page starts at once rather than after a worker's start (the
  Python start and the PyTorch import: seconds on a quiet machine, half a minute on a busy laptop);
  it exits idle ``$MTL_LAB_POOL_IDLE_EXIT`` seconds after the last run and after the last page's call
  (plus a grace of :data:`PAGE_GRACE_SECONDS` for background tabs);
- one per home: it holds an ``flock`` on ``$MTL_LAB_HOME/pool.lock`` for its lifetime (the kernel
  drops it if the process dies), so two submitters never start two pools;
- it starts worker processes (single-threaded torch) up to ``max_workers`` (default
  ``$MTL_LAB_WORKERS`` or the number of cores) while runs are queued, replaces those that die and
  marks their runs ``failed`` with the reason (exit status or signal);
- liveness never depends on the database, which another process may lock or a full disk may refuse:
  the supervisor judges *its own* workers by their processes and by a file each one touches every
  second (``$MTL_LAB_HOME/beats/<pid>``; a busy worker silent for :data:`WORKER_STALL_TIMEOUT`
  seconds is hung, and ended). Only runs of workers it does not own (another host, a serial
  executor) are judged by their heartbeats in the store, after
  :data:`~mtl_core.runs.store.HEARTBEAT_TIMEOUT` seconds, far above SQLite's busy timeout. After a
  suspend (closed laptop lid) it gives workers one timeout to show a fresh sign of life;
- it alone writes ``$MTL_LAB_HOME/logs/pool.log`` (rotated at 5 MB, two old files kept), its
  workers' output included; the same message is logged at most once per :data:`LOG_REPEAT_WINDOW`
  seconds, with a count of the repeats.

Processes are started with :class:`subprocess.Popen` of ``sys.executable`` running :func:`main`
(the supervisor in a new session): that is safe from a multi-threaded server such as Streamlit (no
``fork`` of a process with threads), the pool outlives the page and is not hit by the terminal's
Ctrl-C, and a fresh interpreter inherits neither the parent's torch thread pools nor its open
database connections. The supervisor imports no torch. The pool lock is an ``flock`` (POSIX).

What a worker process does (claim a queued run, :func:`execute_run` it, beat its liveness file) is in
:mod:`mtl_core.runs.execution`, re-exported here. Inside a worker, :class:`StoreRecorder` (a trainer :class:`~mtl_core.training.events.Callback`, in
:mod:`mtl_core.runs.recorder` with the write back-off, re-exported here) buffers
metric rows and probe records and writes them in batches from a background thread, together with
the heartbeat and the cancel poll, so the training loop never waits for SQLite. A failed write (a
locked store, a full disk, a read-only file) is retried with exponential back-off
(:data:`WRITE_RETRY_FIRST` doubling up to :data:`WRITE_RETRY_MAX` seconds) while the rows stay
buffered, so nothing is lost once writes work again.

Metric keys written per task: ``train_loss`` and ``weight`` (every step), ``epoch_train_loss``,
``val_loss`` and ``val_metric`` (every epoch, at the epoch's last step); ``epoch_seconds`` has no task.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtl_core._files import replace_text
from mtl_core.config import TrainConfig
from mtl_core.errors import MTLError
from mtl_core.plugins import resolve_plugin_paths
from mtl_core.runs.execution import (
    _FORCED_EXIT_CODE,
    _SHUTDOWN_ERROR,
    _beat_path,
    execute_run,
    limit_threads,
    record_end,
    run_worker,
    train_outcome,
    validate_config,
)
from mtl_core.runs.executors import EXECUTORS, SHUTDOWN_GRACE, Executor, LocalProcessExecutor, make_executor
from mtl_core.runs.recorder import (
    CANCEL_POLL_INTERVAL,
    FLUSH_INTERVAL,
    HEARTBEAT_INTERVAL,
    WRITE_RETRY_FIRST,
    WRITE_RETRY_MAX,
    StoreRecorder,
)
from mtl_core.runs.store import (
    DEFAULT_OWNER,
    FINISHED_STATUSES,
    HEARTBEAT_TIMEOUT,
    RunRecord,
    RunStore,
    StoreError,
    default_store_path,
    lab_home,
    process_alive,
)
from mtl_core.settings import settings

__all__ = [
    "submit",
    "open_store",
    "get_run",
    "run_status",
    "cancel",
    "list_runs",
    "wait",
    "validate_config",
    "Executor",
    "LocalProcessExecutor",
    "EXECUTORS",
    "make_executor",
    "StoreRecorder",
    "execute_run",
    "train_outcome",
    "record_end",
    "run_worker",
    "limit_threads",
    "PoolSupervisor",
    "PoolError",
    "ensure_pool",
    "note_page_open",
    "PAGE_OPEN_SECONDS",
    "pool_running",
    "pool_status",
    "stop_pool",
    "HEARTBEAT_INTERVAL",
    "WORKER_STALL_TIMEOUT",
    "WRITE_RETRY_FIRST",
    "WRITE_RETRY_MAX",
    "LOG_REPEAT_WINDOW",
    "RepeatFilter",
    "FLUSH_INTERVAL",
    "CANCEL_POLL_INTERVAL",
    "DEFAULT_IDLE_EXIT",
    "EXIT_ALREADY_RUNNING",
    "main",
    "default_max_workers",
    "setup_logging",
]

log = logging.getLogger(__name__)

#: A worker of the pool that is running a run and has not touched its liveness file for this long is
#: hung (stopped, frozen): its run is failed and the process ended. The file lives outside the
#: database, so a locked or full store does not delay it.
WORKER_STALL_TIMEOUT = 6.0
#: The same log message (same logger, level and text) is written at most once per this many seconds.
LOG_REPEAT_WINDOW = 10.0
#: Seconds an automatically started pool (and each of its workers) waits for work before exiting.
DEFAULT_IDLE_EXIT = 60.0
SUPERVISOR_TICK = 0.5

#: How the pool starts its processes: straight into :func:`main`, not through the CLI, so that a
#: supervisor imports neither torch nor the other commands' modules (it stays small and starts fast).
_ENTRY = (sys.executable, "-c", "import sys; from mtl_core.runs.workers import main; sys.exit(main())")

LOCK_FILE = "pool.lock"
#: Touched by :func:`note_page_open`: a page of the dashboard is open.
PAGE_FILE = "pool.page"
#: A page counts as open this long after it last said so (:func:`note_page_open`): a few of the
#: page's refreshes, and a background tab whose timers the browser slows to one a minute.
PAGE_OPEN_SECONDS = 75.0
#: An idle pool exits ``idle_exit`` seconds after the last run and after the last page's call plus
#: this grace (or plus ``idle_exit`` when shorter): with the default 60 s, a background tab calling
#: once a minute keeps the pool instead of restarting it (and a worker's PyTorch import) every minute.
PAGE_GRACE_SECONDS = 30.0
INFO_FILE = "pool.json"
LOG_FILE = "pool.log"
#: What a pool writes before its logging is set up (an interpreter that cannot start, say).
_START_LOG_FILE = "pool-start.log"
_LOG_ROTATE_BYTES = 5_000_000
_LOG_BACKUPS = 2
#: Exit status of ``worker`` when another pool already serves the home.
EXIT_ALREADY_RUNNING = 3


class PoolError(MTLError):
    """The worker pool cannot be started or reached."""


# --- failing writes and repeated messages -------------------------------------------------------------
class RepeatFilter(logging.Filter):
    """Lets the same message (logger, level, text) through at most once per ``window`` seconds; the
    next one after a quiet spell says how many were left out. A store that refuses every write must
    not turn into a thousand log lines a second on the same full disk."""

    def __init__(self, window: float = LOG_REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [last written at, left out]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        key = (record.name, record.levelno, message)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                return False
            left_out = int(seen[1]) if seen is not None else 0
            self._seen[key] = [now, 0]
            if len(self._seen) > 1000:  # forget messages not repeated lately
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        if left_out:
            record.msg, record.args = f"{message} (and {left_out} more like it in {self.window:.0f} s)", None
        return True


# --- configs and the public API -------------------------------------------------------------------
_STORES: dict[Path, tuple[tuple[int, int, int], RunStore]] = {}
_STORES_LOCK = threading.Lock()


def open_store(home: str | os.PathLike[str] | None = None) -> RunStore:
    """The run store of ``home``, opened once per process and reused (it is thread-safe); a new
    one if the file was replaced or deleted since."""
    path = default_store_path(home).absolute()

    def identity() -> tuple[int, int, int] | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino, os.getpid()

    with _STORES_LOCK:
        cached = _STORES.get(path)
        if cached is not None and cached[0] == identity():
            return cached[1]
        store = RunStore(path)
        _STORES[path] = (identity() or (0, 0, 0), store)
        return store


def submit(
    configs: TrainConfig | Mapping[str, Any] | Sequence[TrainConfig | Mapping[str, Any]],
    *,
    names: Sequence[str | None] | None = None,
    owner: str = DEFAULT_OWNER,
    group_id: str | None = None,
    home: str | os.PathLike[str] | None = None,
    executor: Executor | None = None,
    start: bool = True,
) -> list[int]:
    """Validate and queue one config or a batch (all or none), make sure something will run
    them, and return the run ids in order.

    A bad config raises :class:`~mtl_core.errors.ConfigError` before anything is queued.
    ``group_id`` ties the runs of one study together; ``owner`` is the user or session id.
    ``start=False`` only queues (a pool started later picks the runs up).
    """
    if isinstance(configs, (TrainConfig, Mapping)):
        configs = [configs]
    batch = list(configs)
    validated = [validate_config(c, i if len(batch) > 1 else None) for i, c in enumerate(batch)]
    if names is None:
        names = [c.name for c in validated]
    store = open_store(home)
    ids = store.create_runs([c.to_dict() for c in validated], names=names, owner=owner, group_id=group_id)
    if start and ids:
        (executor or make_executor(home=store.home)).start(ids)
    return ids


def get_run(run_id: int, home: str | os.PathLike[str] | None = None) -> RunRecord:
    """The stored record of ``run_id`` (status, error, worker pid, timestamps, config)."""
    return open_store(home).get_run(run_id)


def run_status(run_id: int, home: str | os.PathLike[str] | None = None) -> str:
    """``queued``, ``running``, ``done``, ``failed`` or ``cancelled``."""
    return get_run(run_id, home).status


def cancel(run_id: int, home: str | os.PathLike[str] | None = None) -> str:
    """Cancel a run: ``"cancelled"`` if it was queued, ``"requested"`` if it is running (its
    worker stops it within about a second and marks it ``cancelled``, keeping partial metrics)."""
    return open_store(home).request_cancel(run_id)


def list_runs(home: str | os.PathLike[str] | None = None, **filters: Any) -> list[RunRecord]:
    """Runs of the store, newest first; filters as :meth:`RunStore.list_runs`."""
    return open_store(home).list_runs(**filters)


def wait(
    run_ids: Sequence[int],
    timeout: float | None = None,
    home: str | os.PathLike[str] | None = None,
    poll: float = 0.2,
) -> dict[int, str]:
    """Block until every run has finished; returns id → final status. Raises ``TimeoutError``."""
    store = open_store(home)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        statuses = {i: store.get_run(i).status for i in run_ids}
        if all(s in FINISHED_STATUSES for s in statuses.values()):
            return statuses
        if deadline is not None and time.monotonic() > deadline:
            pending = {i: s for i, s in statuses.items() if s not in FINISHED_STATUSES}
            raise TimeoutError(f"runs still unfinished after {timeout} s: {pending}")
        time.sleep(poll)


# --- the pool supervisor ------------------------------------------------------------------------------
class _PoolLock:
    """An exclusive ``flock`` on ``pool.lock``: held by the supervisor for its whole life."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def acquire(self, wait: float = 0.0) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 — kept open while the lock is held
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    return False
                time.sleep(0.05)
                continue
            self._fh = fh
            return True

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def note_page_open(home: str | os.PathLike[str] | None = None) -> None:
    """Tell the pool of ``home`` that a page of the dashboard is open: for :data:`PAGE_OPEN_SECONDS`
    it keeps a worker ready (PyTorch loaded) and does not exit idle. Cheap (one file touched);
    a home that cannot be written is left alone (the page says why elsewhere)."""
    path = lab_home(home) / PAGE_FILE
    try:
        path.touch()
    except FileNotFoundError:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError:
            pass
    except OSError:
        pass


def _page_seen_ago(home: Path) -> float | None:
    """Seconds since a page last called :func:`note_page_open` for ``home`` (None: never)."""
    try:
        return max(0.0, time.time() - (home / PAGE_FILE).stat().st_mtime)
    except OSError:
        return None


def pool_running(home: str | os.PathLike[str] | None = None) -> bool:
    """Whether a pool supervisor serves ``home`` (its lock is held)."""
    path = lab_home(home) / LOCK_FILE
    if not path.exists():  # never had a pool: do not create anything just to look
        return False
    lock = _PoolLock(path)
    if lock.acquire():
        lock.release()
        return False
    return True


def pool_status(home: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The running pool's description (pid, workers, settings), or None when none runs."""
    home = lab_home(home)
    if not pool_running(home):
        return None
    try:
        return json.loads((home / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"pid": None, "workers": []}  # it is starting up


def _child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MTL_LAB_HOME"] = str(home)
    if env.get("MTL_LAB_PLUGINS"):  # the pool runs in ``home``: plugin paths must not be relative
        env["MTL_LAB_PLUGINS"] = resolve_plugin_paths(env["MTL_LAB_PLUGINS"])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    # Importable even when mtl_core is used from a source checkout rather than installed.
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([package_root, *paths])
    return env


def _log_path(home: Path, name: str = LOG_FILE) -> Path:
    path = home / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ensure_pool(
    home: str | os.PathLike[str] | None = None,
    *,
    max_workers: int | None = None,
    idle_exit: float | None = None,
    executor: str | None = None,
    address: str | None = None,
) -> int | None:
    """Start a pool supervisor for ``home`` unless one runs; returns the new supervisor's pid
    (None if one was running). It exits by itself after ``idle_exit`` seconds without work and
    without an open page (:func:`note_page_open`; default ``$MTL_LAB_POOL_IDLE_EXIT`` or 60). Its
    log: ``<home>/logs/pool.log``.

    With ``executor="ray"`` (default: ``$MTL_LAB_EXECUTOR``; any other name starts the local pool)
    the pool is the Ray bridge (:func:`mtl_core.runs.ray_executor.run_bridge`) for the cluster at
    ``address`` (default ``$MTL_LAB_RAY_ADDRESS``; none: a local Ray): a malformed address or Ray
    missing raises :class:`~mtl_core.runs.ray_support.RaySetupError` here, before anything starts; a
    cluster that does not answer is written to the pool log by the bridge, which exits (exit status
    2) and leaves the queued runs queued."""
    home = lab_home(home).absolute()
    home.mkdir(parents=True, exist_ok=True)
    if pool_running(home):
        return None
    if (executor or settings().executor) == "ray":
        command = [*_ENTRY, "bridge", "--home", str(home), *_bridge_options(address)]
    else:
        command = [*_ENTRY, "supervise", "--home", str(home)]
    if max_workers is not None:
        command += ["--workers", str(int(max_workers))]
    if idle_exit is not None:
        command += ["--idle-exit", str(float(idle_exit))]
    # The supervisor logs into pool.log itself (rotated); its raw output is only what comes before.
    start_log = _log_path(home, _START_LOG_FILE)
    try:
        if start_log.stat().st_size > _LOG_ROTATE_BYTES:
            start_log.unlink()
    except FileNotFoundError:
        pass
    with open(start_log, "ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            env=_child_env(home), cwd=str(home), start_new_session=True, close_fds=True,
        )
    # Reap it when it exits so that a long-lived parent (the dashboard) keeps no zombie.
    threading.Thread(target=process.wait, name="mtl-pool-reaper", daemon=True).start()
    log.info("started a worker pool for %s (pid %s)", home, process.pid)
    return process.pid


def _bridge_options(address: str | None) -> list[str]:
    """The bridge's ``--address`` option, after checking what can be checked without importing Ray
    (the address; Ray installed): a page that starts the pool gets the reason at once."""
    import importlib.util

    from mtl_core.runs.ray_support import RAY_INSTALL_HINT, RAY_PIN, RaySetupError, parse_address

    cluster = parse_address(address if address is not None else settings().ray_address)
    if importlib.util.find_spec("ray") is None:
        raise RaySetupError(f"the `ray` executor needs Ray {RAY_PIN}, which is not installed: "
                            f"run `{RAY_INSTALL_HINT}`")
    return ["--address", cluster] if cluster else []


def stop_pool(home: str | os.PathLike[str] | None = None, timeout: float = SHUTDOWN_GRACE + 5) -> bool:
    """Ask the pool of ``home`` to stop (SIGTERM; its running runs become ``failed (interrupted)``)
    and wait for it; after ``timeout`` seconds kill it. Returns False if no pool was running."""
    home = lab_home(home)
    info = pool_status(home)
    if info is None:
        return False
    deadline = time.monotonic() + 5.0
    while info.get("pid") is None and time.monotonic() < deadline:  # still starting up
        time.sleep(0.1)
        info = pool_status(home) or {}
    pid = info.get("pid")
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while pool_running(home):
        if time.monotonic() > deadline:
            for victim in [pid, *[w["pid"] for w in info.get("workers", [])]]:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
        time.sleep(0.1)
    deadline = time.monotonic() + 2.0  # it releases the lock just before it exits
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    started: float
    oom_kills: int | None = None  # the kernel's OOM-kill count when it started, where known


def _oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has ended in this cgroup (cgroup v2), or None
    where that cannot be read."""
    try:
        with open("/sys/fs/cgroup/memory.events", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def _describe_exit(code: int, out_of_memory: bool = False) -> str:
    """How a worker ended; "out of memory" only when the kernel's OOM killer is known to have acted."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory: the kernel's OOM killer ended it)" if out_of_memory else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


def _idle_since(home: Path, idle_since: float, idle_exit: float | None, busy: bool) -> float:
    """When a pool (or Ray bridge) became idle, on the monotonic clock: now while it is busy or never
    exits idle; an open page (:func:`note_page_open`) counts as work until its grace has passed."""
    if busy or idle_exit is None:
        return time.monotonic()
    page_ago = _page_seen_ago(home)
    if page_ago is not None:  # an open page keeps the pool (and a worker)
        idle_since = max(idle_since, time.monotonic() - page_ago + min(PAGE_GRACE_SECONDS, idle_exit))
    return idle_since


def _release_if_idle(lock: _PoolLock, store: RunStore) -> bool:
    """An idle pool about to exit: release the lock, then look at the queue once more (a run submitted
    just before the release saw the lock held and started no pool, so this pool must take it). True
    if the pool may exit; False if it holds the lock again and must serve."""
    lock.release()
    if store.count_runs("queued") == 0:
        return True
    if lock.acquire(wait=2.0):
        return False
    return True  # another supervisor took over


def _write_info_file(home: Path, info: Mapping[str, Any]) -> None:
    """Replace ``pool.json`` (what :func:`pool_status` reads) at once, never half written."""
    replace_text(home / INFO_FILE, json.dumps(dict(info), indent=2))


def _remove_info(home: Path) -> None:
    """Remove ``pool.json`` if this process wrote it."""
    path = home / INFO_FILE
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


class PoolSupervisor:
    """Keeps worker processes running for one MTL Lab home (see the module docstring).

    ``min_workers`` are kept alive even when idle (a server); more are started, up to
    ``max_workers`` (default: the number of CPU cores), while runs are queued. With ``idle_exit``
    the supervisor exits after that many seconds with nothing queued or running;
    ``worker_idle_exit`` lets idle workers above the minimum exit on their own.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        max_workers: int | None = None,
        min_workers: int = 0,
        idle_exit: float | None = None,
        worker_idle_exit: float | None = None,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        stall_timeout: float = WORKER_STALL_TIMEOUT,
    ) -> None:
        self.home = lab_home(home).absolute()
        self.max_workers = max(1, int(max_workers or os.cpu_count() or 1))
        self.min_workers = min(max(0, int(min_workers)), self.max_workers)
        self.idle_exit = idle_exit or None
        self.worker_idle_exit = worker_idle_exit if self.min_workers == 0 else None
        self.heartbeat_timeout = heartbeat_timeout
        self.stall_timeout = stall_timeout
        self.host = socket.gethostname()
        self.workers: dict[int, _Worker] = {}
        self._hung: dict[int, str] = {}  # pid -> why this pool ended it
        self._lock = _PoolLock(self.home / LOCK_FILE)
        self._stopping = threading.Event()
        self._quick_failures = 0
        self._spawn_not_before = 0.0
        self._last_info: dict[str, Any] | None = None
        self.started_at = time.time()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> int:
        """Serve until stopped or idle; returns the exit status (``EXIT_ALREADY_RUNNING`` if
        another supervisor holds the home)."""
        if not self._lock.acquire(wait=2.0):
            log.info("a worker pool already serves %s", self.home)
            return EXIT_ALREADY_RUNNING
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stopping.set())
        store = None
        try:
            store = RunStore.at_home(self.home)
            # Only runs whose local worker process is gone: heartbeats are judged from the
            # loop, after workers have had one timeout to send one (they may just have resumed).
            recovered = store.recover_interrupted(stale_after=None)
            if recovered:
                log.info("marked runs %s failed (interrupted: their worker is gone)", recovered)
            log.info("pool %s serving %s (max %d workers)", os.getpid(), self.home, self.max_workers)
            self._serve(store)
        finally:
            self._shutdown(store)
            _remove_info(self.home)
            self._lock.release()
            if store is not None:
                store.close()
        return 0

    # the loop
    def _serve(self, store: RunStore) -> None:
        last_wall = woke_at = time.time()
        idle_since = time.monotonic()
        while not self._stopping.wait(SUPERVISOR_TICK):
            # Heartbeat ages are measured at this instant: if this process is paused later in the
            # tick, the next tick sees the gap instead of judging workers by a clock that jumped.
            wall = time.time()
            if wall - last_wall > max(6 * SUPERVISOR_TICK, 3.0):
                # Suspended (laptop lid) or the clock jumped: heartbeats are old for a good reason.
                log.info("woke up after %.0f s; giving workers %.0f s to show a sign of life", wall - last_wall,
                         self.stall_timeout)
                woke_at = wall
            last_wall = wall
            if not store.path.exists():
                log.error("the run store %s is gone; stopping", store.path)
                return
            try:
                self._reap(store)
                busy = self._busy(store)
                self._end_hung(busy, now=wall, judge=wall >= woke_at + self.stall_timeout)
                self._fail_stale(store, judge_heartbeats=wall >= woke_at + self.heartbeat_timeout, now=wall)
                queued = store.count_runs("queued")
                self._spawn(queued, busy)
                self._write_info(busy)
            except (StoreError, OSError) as exc:  # e.g. a locked store, or too many processes
                log.warning("pool: %s", exc)
                continue
            idle_since = _idle_since(self.home, idle_since, self.idle_exit, busy=bool(queued or busy))
            if (self.idle_exit is not None and time.monotonic() - idle_since > self.idle_exit
                    and _release_if_idle(self._lock, store)):
                log.info("pool %s idle for %.0f s; exiting", os.getpid(), self.idle_exit)
                return

    def _reap(self, store: RunStore) -> None:
        for pid, worker in list(self.workers.items()):
            code = worker.process.poll()
            if code is None:
                continue
            lived = time.monotonic() - worker.started
            oom_now = _oom_kill_count() if code == -signal.SIGKILL else None
            out_of_memory = oom_now is not None and worker.oom_kills is not None and oom_now > worker.oom_kills
            how = _describe_exit(code, out_of_memory)
            reason = self._hung.get(pid) or f"worker process {pid} {how}"
            # A refused write leaves the worker listed, so the next tick records its runs' end.
            failed = store.fail_runs_of_worker(pid, reason, host=self.host)
            del self.workers[pid]
            self._hung.pop(pid, None)
            _beat_path(self.home, pid).unlink(missing_ok=True)
            if failed:
                log.warning("worker %s %s; its run(s) %s marked failed", pid, how, failed)
            elif code not in (0, _FORCED_EXIT_CODE):
                log.warning("worker %s %s", pid, how)
            if code not in (0, _FORCED_EXIT_CODE) and lived < 10.0 and not failed:
                self._quick_failures += 1  # e.g. a broken environment: back off instead of looping
                self._spawn_not_before = time.monotonic() + min(60.0, 2.0 ** self._quick_failures)
            else:
                self._quick_failures = 0

    def _end_hung(self, busy: Mapping[int, int], now: float, judge: bool) -> None:
        """Kill my busy workers whose liveness file is older than the stall timeout (stopped or
        frozen; the store plays no part). :meth:`_reap` then fails their runs with the reason."""
        if not judge:
            return
        for pid, run_id in busy.items():
            worker = self.workers.get(pid)
            if worker is None or pid in self._hung or worker.process.poll() is not None:
                continue
            try:
                silent = now - _beat_path(self.home, pid).stat().st_mtime
            except FileNotFoundError:
                continue  # not started beating yet: its process liveness is all there is
            if silent > self.stall_timeout:
                self._hung[pid] = (f"interrupted: no heartbeat from its worker process {pid} for {silent:.0f} s "
                                   "(hung); the pool ended it")
                log.warning("worker %s (run %s) silent for %.0f s; ending it", pid, run_id, silent)
                worker.process.kill()  # the pool replaces it

    def _fail_stale(self, store: RunStore, judge_heartbeats: bool, now: float) -> None:
        """Fail runs whose worker is gone; heartbeats in the store count only for workers that are
        not mine (mine are judged by their processes, which a busy store cannot disguise)."""
        marked = store.recover_interrupted(stale_after=self.heartbeat_timeout if judge_heartbeats else None,
                                           now=now, own_workers=list(self.workers))
        for run_id in marked:
            log.warning("run %s: %s", run_id, store.get_run(run_id).error)

    def _busy(self, store: RunStore) -> dict[int, int]:
        """My workers that are running a run: pid → run id."""
        running = store.list_runs(status="running")
        return {r.worker_pid: r.id for r in running
                if r.worker_pid in self.workers and r.worker_host == self.host}

    def _kept_workers(self) -> int:
        """Workers kept even with nothing to do: ``min_workers``, and one while a page is open."""
        page_ago = _page_seen_ago(self.home)
        page_open = page_ago is not None and page_ago <= PAGE_OPEN_SECONDS
        return max(self.min_workers, 1 if page_open else 0)

    def _spawn(self, queued: int, busy: Mapping[int, int]) -> None:
        alive = len(self.workers)
        idle = alive - len(busy)
        kept = self._kept_workers()
        wanted = max(kept - alive, min(self.max_workers - alive, queued - idle))
        if wanted <= 0 or time.monotonic() < self._spawn_not_before:
            return
        for number in range(wanted):
            command = [*_ENTRY, "work", "--home", str(self.home), "--parent-pid", str(os.getpid())]
            if self.worker_idle_exit and alive + number >= kept:  # a kept worker lives as long as the pool
                command += ["--idle-exit", str(self.worker_idle_exit)]
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env=_child_env(self.home),
                                       cwd=str(self.home), close_fds=True)
            threading.Thread(target=_forward_output, args=(process,), name=f"mtl-output-{process.pid}",
                             daemon=True).start()
            self.workers[process.pid] = _Worker(process, time.monotonic(), _oom_kill_count())
            log.info("started worker %s", process.pid)

    def _write_info(self, busy: Mapping[int, int]) -> None:
        info = {
            "pid": os.getpid(),
            "host": self.host,
            "home": str(self.home),
            "started_at": self.started_at,
            "max_workers": self.max_workers,
            "min_workers": self.min_workers,
            "idle_exit": self.idle_exit,
            "workers": [{"pid": pid, "run_id": busy.get(pid)} for pid in sorted(self.workers)],
        }
        if info == self._last_info:
            return
        self._last_info = info
        _write_info_file(self.home, info)

    def _shutdown(self, store: RunStore | None) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while any(w.process.poll() is None for w in self.workers.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid, worker in self.workers.items():
            if worker.process.poll() is None:
                log.warning("worker %s did not stop; killing it", pid)
                worker.process.kill()
                worker.process.wait()
            if store is not None:
                try:
                    store.fail_runs_of_worker(pid, _SHUTDOWN_ERROR, host=self.host)
                except StoreError as exc:
                    log.warning("pool: %s", exc)
            _beat_path(self.home, pid).unlink(missing_ok=True)
        self.workers.clear()


_worker_output = logging.getLogger(__name__ + ".output")


def _forward_output(process: subprocess.Popen[bytes]) -> None:
    """Pass a worker's output (its log lines, formatted and rate-limited by the worker) into the
    supervisor's log, so that one process writes and rotates the pool log. Reads until the worker
    exits, so a worker never blocks on a full pipe."""
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line:
            _worker_output.info(line, extra={"forwarded": True})
    process.stdout.close()


# --- entry point of the pool's processes ------------------------------------------------------------
def default_max_workers() -> int:
    """``$MTL_LAB_WORKERS``, else the number of CPU cores (see :mod:`mtl_core.settings`)."""
    return settings().workers


class _PoolFormatter(logging.Formatter):
    """The pool's line format; a worker's forwarded line is already formatted."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "forwarded", False):
            return record.getMessage()
        return super().format(record)


def setup_logging(log_file: str | os.PathLike[str] | None = None) -> None:
    """Log INFO and up to stderr, or to ``log_file`` rotated at 5 MB (two old files kept); the same
    message at most once per :data:`LOG_REPEAT_WINDOW` seconds. A line that cannot be written (a
    full disk) is dropped without a traceback."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=_LOG_ROTATE_BYTES,
                                                       backupCount=_LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(_PoolFormatter("%(asctime)s %(levelname)s [pid %(process)d] %(message)s"))
    handler.addFilter(RepeatFilter())
    logging.raiseExceptions = False
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``supervise``: an automatically started pool (exits when idle); ``work``: one worker.
    Started by :func:`ensure_pool` and :class:`PoolSupervisor`; people use ``python -m mtl_core worker``."""
    import argparse

    parser = argparse.ArgumentParser(prog="mtl_core.runs.workers", description=main.__doc__)
    parser.add_argument("role", choices=("supervise", "work", "bridge"))
    parser.add_argument("--home", required=True)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--idle-exit", type=float)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--address")
    args = parser.parse_args(argv)
    setup_logging(_log_path(Path(args.home)) if args.role != "work" else None)
    try:
        if args.role == "work":
            return run_worker(args.home, parent_pid=args.parent_pid, idle_exit=args.idle_exit or None)
        idle = args.idle_exit if args.idle_exit is not None else settings().pool_idle_exit
        if args.role == "bridge":
            from mtl_core.runs.ray_executor import run_bridge

            # An empty address here is a local Ray even if $MTL_LAB_RAY_ADDRESS names a cluster.
            status = run_bridge(args.home, address=args.address or "", idle_exit=idle or None,
                                max_parallel=args.workers, retry_connect=True)
            return 0 if status == EXIT_ALREADY_RUNNING else status
        supervisor = PoolSupervisor(args.home, max_workers=args.workers or default_max_workers(), min_workers=0,
                                    idle_exit=idle, worker_idle_exit=idle)
        status = supervisor.run()
    except MTLError as exc:
        log.error("%s", exc)
        return 2
    return 0 if status == EXIT_ALREADY_RUNNING else status  # a benign race between two submitters
