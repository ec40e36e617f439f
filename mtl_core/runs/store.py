"""The run store: every run, its metric time series, its probe records and its result, in SQLite.

One file, ``$MTL_LAB_HOME/runs.db`` (default ``~/.mtl_lab/runs.db``), in WAL mode so that the
dashboard reads while the workers write. It is created on first use and carries its own identity
(``PRAGMA application_id``) and schema version (``PRAGMA user_version``, upgraded by
:data:`MIGRATIONS`). A file that is not an MTL Lab run store — another SQLite database, a corrupt
file, a text file, an empty file — raises :class:`StoreError` and is never written to: it is inspected
through a read-only connection before anything opens it for writing. A new store is built beside its
path and linked into place, so no process sees it half-made. A store whose pages are damaged raises
:class:`StoreDamagedError`, whose message names the file and what to do.

Concurrency: SQLite connections are not shared between threads, so each thread (and each process)
gets its own; writes are short ``BEGIN IMMEDIATE`` transactions with a busy timeout, and metric
rows arrive in batches (see :class:`mtl_core.runs.workers.StoreRecorder`).

Live views read incrementally: :meth:`RunStore.metrics_after` and :meth:`RunStore.probes_after`
return everything of one run after a step with one query on the ``(run_id, step)`` index. The
writer commits all the rows of a step together, so "after the last step I have" never misses rows.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtl_core.runs.schema import (
    _BUSY_TIMEOUT_MS,
    _CHECKED_FILES,
    _DAMAGED_CODES,
    _RUN_COLUMNS,
    _SQLITE_MAGIC,
    _STUDY_COLUMNS,
    APPLICATION_ID,
    DEFAULT_OWNER,
    FINISHED_STATUSES,
    HEARTBEAT_TIMEOUT,
    MAX_RUN_ID,
    MIGRATION_STEPS,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATUSES,
    STUDY_KINDS,
    MetricRow,
    ProbeRow,
    RunNotFoundError,
    RunRecord,
    RunStateError,
    StoreDamagedError,
    StoreError,
    StudyNotFoundError,
    StudyRecord,
    _config_dict,
    _dumps,
    _loads,
    _rollback,
    as_run_id,
    default_store_path,
    lab_home,
    process_alive,
    run_duration,
)

__all__ = [
    "RunStore",
    "RunRecord",
    "MetricRow",
    "ProbeRow",
    "StoreError",
    "StoreDamagedError",
    "RunNotFoundError",
    "RunStateError",
    "StudyRecord",
    "StudyNotFoundError",
    "STUDY_KINDS",
    "STATUSES",
    "FINISHED_STATUSES",
    "SCHEMA_VERSION",
    "APPLICATION_ID",
    "MIGRATIONS",
    "MAX_RUN_ID",
    "as_run_id",
    "DEFAULT_OWNER",
    "HEARTBEAT_TIMEOUT",
    "lab_home",
    "default_store_path",
    "process_alive",
    "run_duration",
]


class RunStore:
    """The SQLite run store. Safe to share between threads (one connection per thread) and to open
    from many processes at once.

    ``path`` is the database file (or a folder, meaning ``folder/runs.db``); the default is
    :func:`default_store_path`. The file and its folder are created on first use.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        resolved = default_store_path() if path is None else Path(path).expanduser()
        if resolved.is_dir():
            resolved = resolved / "runs.db"
        self.path = resolved.absolute()
        self.host = socket.gethostname()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._prepare()

    @classmethod
    def at_home(cls, home: str | os.PathLike[str] | None = None) -> RunStore:
        """The store of an MTL Lab home folder (see :func:`lab_home`)."""
        return cls(default_store_path(home))

    @property
    def home(self) -> Path:
        return self.path.parent

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # --- opening, identity checks and migrations -------------------------------------------------
    def _fail(self, what: str) -> StoreError:
        return StoreError(f"{self.path} {what}")

    def _database_error(self, exc: sqlite3.Error, what: str) -> StoreError:
        """A StoreError for ``exc``: :class:`StoreDamagedError`, which says what to do, when the file
        is damaged; else ``<path> <what> (<exc>)``."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED_CODES:
            return StoreDamagedError(
                f"The run store {self.path} is damaged ({exc}). Stop the app and the workers, then move "
                f"the file aside (for example rename it to {self.path.name}.damaged) to start a new, empty "
                "store, or restore it from a backup."
            )
        return self._fail(f"{what} ({exc})")

    def _prepare(self) -> None:
        """Check the file before writing anything; create or migrate it if it is ours."""
        if self.path.exists():
            if not self.path.is_file():
                raise self._fail("is not a file (MTL Lab expects its run store database here)")
            stat = self.path.stat()
            if stat.st_size == 0:  # a new store never shows itself empty (see ``_create``)
                raise self._fail(
                    "is an empty file, not an MTL Lab run store; it was left untouched (move it aside "
                    "or delete it, and a new store is created in its place)"
                )
            # Read the header only before this process's first connection to the file: closing a
            # plain file handle drops every POSIX lock the process holds on it, SQLite's included,
            # and another process may then take itself for the last user and delete the WAL.
            if (stat.st_dev, stat.st_ino) not in _CHECKED_FILES:
                self._inspect_existing()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._fail(f"cannot be created: {exc.strerror or exc}") from None
            self._create()
        self._initialise()
        try:
            stat = self.path.stat()
            _CHECKED_FILES.add((stat.st_dev, stat.st_ino))
        except OSError:
            pass

    def _create(self) -> None:
        """Build a new store beside the path and link it into place, so that no process ever sees
        the store half-made (an empty file is refused as not a store). When another process got
        there first, its store is used."""
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.new")
        try:
            conn = sqlite3.connect(staging, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
                conn.execute("BEGIN IMMEDIATE")
                self._migrate(conn, 0)
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(staging, self.path)
            except FileExistsError:
                pass  # another process created it meanwhile
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(staging, self.path)
        except (OSError, sqlite3.Error) as exc:
            raise self._fail(f"cannot be created: {getattr(exc, 'strerror', None) or exc}") from None
        finally:
            for leftover in (staging, staging.with_name(staging.name + "-wal"), staging.with_name(staging.name + "-shm")):
                leftover.unlink(missing_ok=True)

    def _inspect_existing(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise self._fail(f"cannot be read: {exc.strerror or exc}") from None
        if header != _SQLITE_MAGIC:
            raise self._fail(
                "is not an SQLite database, so it is not an MTL Lab run store; it was left untouched "
                "(move it away or point MTL_LAB_HOME elsewhere)"
            )
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot be opened read-only: {exc}") from None
        try:
            app_id, version, tables = self._identity(conn)
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc, "is corrupt or unreadable; it was left untouched") from None
        finally:
            conn.close()
        self._check_identity(app_id, version, tables)

    @staticmethod
    def _identity(conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        return app_id, version, tables

    def _check_identity(self, app_id: int, version: int, tables: set[str]) -> None:
        if app_id == 0 and not tables and version == 0:
            return  # an empty SQLite file: ours to initialise
        if app_id != APPLICATION_ID:
            raise self._fail(
                "is an SQLite database of another application (application_id "
                f"{app_id:#x}, tables: {', '.join(sorted(tables)) or 'none'}), not an MTL Lab run store; "
                "it was left untouched"
            )
        if version > SCHEMA_VERSION:
            raise self._fail(
                f"has run-store schema version {version}, newer than this MTL Lab supports "
                f"({SCHEMA_VERSION}); upgrade MTL Lab to open it. It was left untouched"
            )

    def _initialise(self) -> None:
        """Create or upgrade the schema, under a write lock, re-checking identity inside it."""
        conn = self._connection()
        try:
            app_id, version, _ = self._identity(conn)
            if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
                return  # the usual case: no write lock needed to open a current store
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                app_id, version, tables = self._identity(conn)
                self._check_identity(app_id, version, tables)
                if version < SCHEMA_VERSION:
                    self._migrate(conn, version)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._database_error(exc, "cannot be opened as a run store") from None
        except StoreError:
            self.close()
            raise

    def _migrate(self, conn: sqlite3.Connection, from_version: int) -> None:
        for version in range(from_version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            step = MIGRATION_STEPS.get(version)
            if step is not None and from_version > 0:
                step(conn, self.home)
        if from_version == 0:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("INSERT INTO meta (key, value) VALUES ('application', 'mtl_lab run store')")
            conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (repr(time.time()),))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    # --- connections -----------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise self._fail(f"cannot be opened: {exc}") from None
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (``BEGIN IMMEDIATE`` waits for the write lock up to the busy timeout)."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc, "is busy or not writable") from None
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            _rollback(conn)
            raise self._database_error(exc, "could not be written") from None
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            _rollback(conn)
            raise self._database_error(exc, "could not commit") from None

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same state."""
        conn = self._connection()
        try:
            conn.execute("BEGIN")
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc, "could not be read") from None
        try:
            yield conn
        except BaseException:
            _rollback(conn)  # the reads' error, not one of ending the transaction, is what the caller sees
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc, "could not be read") from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc, "could not be read") from None

    # --- runs ------------------------------------------------------------------------------------
    def create_run(
        self,
        config: Mapping[str, Any] | Any,
        name: str | None = None,
        owner: str = DEFAULT_OWNER,
        group_id: str | None = None,
    ) -> int:
        """Queue one run and return its id. ``config`` is a config dict (or a ``TrainConfig``)."""
        return self.create_runs([config], names=[name], owner=owner, group_id=group_id)[0]

    def create_runs(
        self,
        configs: Sequence[Mapping[str, Any] | Any],
        names: Sequence[str | None] | None = None,
        owner: str = DEFAULT_OWNER,
        group_id: str | None = None,
    ) -> list[int]:
        """Queue several runs in one transaction (all or none) and return their ids in order."""
        with self._write() as conn:
            return self._insert_runs(conn, configs, names, owner, group_id)

    @staticmethod
    def _insert_runs(
        conn: sqlite3.Connection,
        configs: Sequence[Mapping[str, Any] | Any],
        names: Sequence[str | None] | None,
        owner: str,
        group_id: str | None,
    ) -> list[int]:
        dicts = [_config_dict(c) for c in configs]
        if names is None:
            names = [None] * len(dicts)
        if len(names) != len(dicts):
            raise ValueError(f"`names` must have one entry per config ({len(dicts)}), got {len(names)}")
        if not isinstance(owner, str) or not owner:
            raise ValueError(f"`owner` must be a non-empty string, got {owner!r}")
        if group_id is not None:
            group_id = str(group_id)
        now = time.time()
        ids = []
        for config, name in zip(dicts, names, strict=True):
            cursor = conn.execute(
                "INSERT INTO runs (name, owner, group_id, suite, strategy, method, config, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                (
                    name if name is not None else config.get("name"),
                    owner,
                    group_id,
                    config.get("suite"),
                    config.get("strategy"),
                    config.get("method"),
                    _dumps(config),
                    now,
                ),
            )
            ids.append(int(cursor.lastrowid or 0))
        return ids

    def _record(self, row: Sequence[Any], traceback: str | None = None) -> RunRecord:
        return RunRecord(
            id=row[0],
            name=row[1],
            owner=row[2],
            group_id=row[3],
            suite=row[4],
            strategy=row[5],
            method=row[6],
            config=_loads(row[7]) or {},
            status=row[8],
            created_at=row[9],
            started_at=row[10],
            finished_at=row[11],
            error=row[12],
            worker_pid=row[13],
            worker_host=row[14],
            heartbeat_at=row[15],
            cancel_requested=bool(row[16]),
            info=_loads(row[17]),
            traceback=traceback,
        )

    def get_run(self, run_id: int) -> RunRecord:
        """The run ``run_id`` (with its traceback, if it failed). Raises :class:`RunNotFoundError`."""
        rows = self._read(f"SELECT {_RUN_COLUMNS}, traceback FROM runs WHERE id = ?", (int(run_id),))
        if not rows:
            raise RunNotFoundError(f"run {run_id} does not exist in {self.path}")
        return self._record(rows[0][:-1], traceback=rows[0][-1])

    def list_runs(
        self,
        status: str | Sequence[str] | None = None,
        owner: str | None = None,
        group_id: str | None = None,
        suite: str | None = None,
        method: str | None = None,
        strategy: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[RunRecord]:
        """Runs matching every given filter (``status`` may be one status or several)."""
        where, params = self._filters(status, owner, group_id, suite, method, strategy)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY id {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"`limit` must be a non-negative integer, got {limit!r}")
            sql += f" LIMIT {limit}"
        return [self._record(row) for row in self._read(sql, params)]

    def count_runs(self, status: str | Sequence[str] | None = None, owner: str | None = None,
                   group_id: str | None = None) -> int:
        where, params = self._filters(status, owner, group_id, None, None, None)
        return int(self._read(f"SELECT COUNT(*) FROM runs{where}", params)[0][0])

    @staticmethod
    def _filters(
        status: str | Sequence[str] | None,
        owner: str | None,
        group_id: str | None,
        suite: str | None,
        method: str | None,
        strategy: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for value in statuses:
                if value not in STATUSES:
                    raise ValueError(f"`status` must be one of {', '.join(STATUSES)}, got {value!r}")
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        for column, value in (("owner", owner), ("group_id", group_id), ("suite", suite), ("method", method),
                              ("strategy", strategy)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(str(value))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def claim_next(self, pid: int | None = None, host: str | None = None) -> RunRecord | None:
        """Atomically take the next queued run for a worker: it becomes ``running`` with this
        worker's pid and a fresh heartbeat. None when the queue is empty.

        Round robin between owners (participants in a workshop): the next run belongs to the owner
        with queued runs who has waited longest for a worker — one never served first, then the one
        whose latest claim is oldest; ties go to the oldest queued run — and is that owner's oldest
        queued run. With one owner this is first in, first out. So no owner waits more than one
        round: a student who queues a 31-run lesson does not make the next student wait for it."""
        with self._write() as conn:
            # ``turn`` is unique per owner, so only owners never served can tie; their oldest run wins.
            row = conn.execute(
                "SELECT q.id FROM runs AS q LEFT JOIN owner_turns AS t ON t.owner = q.owner "
                "WHERE q.status = 'queued' ORDER BY t.turn IS NOT NULL, t.turn, q.id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            self._mark_running(conn, row[0], pid, host)
        return self.get_run(row[0])

    def claim_run(self, run_id: int, pid: int | None = None, host: str | None = None) -> RunRecord | None:
        """Take one specific queued run (for executors that dispatch run by run). None if it is
        no longer queued (someone else took it, or it was cancelled)."""
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                raise RunNotFoundError(f"run {run_id} does not exist in {self.path}")
            if row[0] != "queued":
                return None
            self._mark_running(conn, run_id, pid, host)
        return self.get_run(run_id)

    def _mark_running(self, conn: sqlite3.Connection, run_id: int, pid: int | None, host: str | None) -> None:
        now = time.time()
        conn.execute(
            "UPDATE runs SET status = 'running', started_at = ?, heartbeat_at = ?, worker_pid = ?, "
            "worker_host = ?, error = NULL, traceback = NULL WHERE id = ?",
            (now, now, os.getpid() if pid is None else int(pid), host or self.host, int(run_id)),
        )
        conn.execute(
            "INSERT OR REPLACE INTO owner_turns (owner, turn) SELECT owner, "
            "(SELECT COALESCE(MAX(turn), 0) + 1 FROM owner_turns) FROM runs WHERE id = ?",
            (int(run_id),),
        )

    def set_status(self, run_id: int, status: str, error: str | None = None, traceback: str | None = None) -> None:
        """Set a run's status unconditionally (finished states also set ``finished_at``)."""
        if status not in STATUSES:
            raise ValueError(f"`status` must be one of {', '.join(STATUSES)}, got {status!r}")
        finished_at = time.time() if status in FINISHED_STATUSES else None
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, error = ?, traceback = ?, finished_at = ? WHERE id = ?",
                (status, error, traceback, finished_at, int(run_id)),
            )
            if cursor.rowcount == 0:
                raise RunNotFoundError(f"run {run_id} does not exist in {self.path}")

    def finish_run(
        self,
        run_id: int,
        status: str,
        error: str | None = None,
        traceback: str | None = None,
        pid: int | None = None,
    ) -> bool:
        """Record the end of a run by the worker that ran it. Returns False (and changes nothing)
        if the run is no longer this worker's (e.g. it was deleted, or cancelled by force)."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"`status` must be one of {', '.join(FINISHED_STATUSES)}, got {status!r}")
        worker = os.getpid() if pid is None else int(pid)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, error = ?, traceback = ?, finished_at = ? "
                "WHERE id = ? AND worker_pid = ? AND (status = 'running' OR "
                "(status = 'failed' AND error LIKE 'interrupted%'))",
                (status, error, traceback, time.time(), int(run_id), worker),
            )
            return cursor.rowcount > 0

    def heartbeat(self, run_id: int) -> None:
        """The worker running ``run_id`` is alive."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'",
                         (time.time(), int(run_id)))

    def set_info(self, run_id: int, info: Mapping[str, Any]) -> None:
        """Facts known once the run starts (tasks, total steps, parameter counts)."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET info = ? WHERE id = ?", (_dumps(dict(info)), int(run_id)))

    def request_cancel(self, run_id: int) -> str:
        """Cancel a run: a queued run is ``cancelled`` at once (returns ``"cancelled"``); a running
        run gets a flag that its worker polls (returns ``"requested"``). A finished run raises
        :class:`RunStateError`."""
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                raise RunNotFoundError(f"run {run_id} does not exist in {self.path}")
            if row[0] == "queued":
                conn.execute(
                    "UPDATE runs SET status = 'cancelled', cancel_requested = 1, finished_at = ? WHERE id = ?",
                    (time.time(), int(run_id)),
                )
                return "cancelled"
            if row[0] == "running":
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (int(run_id),))
                return "requested"
        raise RunStateError(f"run {run_id} is already {row[0]}; only queued or running runs can be cancelled")

    def cancel_requested(self, run_id: int) -> bool:
        rows = self._read("SELECT cancel_requested FROM runs WHERE id = ?", (int(run_id),))
        return bool(rows and rows[0][0])

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its metrics, probes and result. A running run must be cancelled first."""
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                raise RunNotFoundError(f"run {run_id} does not exist in {self.path}")
            if row[0] == "running":
                raise RunStateError(f"run {run_id} is running; cancel it first")
            for table, column in (("metrics", "run_id"), ("probes", "run_id"), ("results", "run_id"), ("runs", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (int(run_id),))

    # --- recovery --------------------------------------------------------------------------------
    def recover_interrupted(
        self,
        stale_after: float | None = HEARTBEAT_TIMEOUT,
        now: float | None = None,
        own_workers: Collection[int] = (),
    ) -> list[int]:
        """Mark ``failed`` the running runs whose worker is gone: a worker process of this host
        that no longer exists, or (any host) no heartbeat for ``stale_after`` seconds (None: do not
        judge heartbeats). The runs of ``own_workers`` (pids on this host whose liveness the caller
        checks and whose runs it fails itself, with the reason it knows, e.g. a pool ending a hung
        worker) are left to the caller. Returns the ids it marked."""
        now = time.time() if now is None else now
        own = {int(pid) for pid in own_workers}
        rows = self._read(
            "SELECT id, worker_pid, worker_host, heartbeat_at, started_at FROM runs WHERE status = 'running'"
        )
        marked = []
        for run_id, pid, host, heartbeat_at, started_at in rows:
            last = heartbeat_at if heartbeat_at is not None else started_at
            reason = None
            mine = host == self.host and pid in own  # the caller reaps these itself, with its own reason
            if pid is not None and host == self.host and not mine and not process_alive(int(pid)):
                reason = f"interrupted: its worker process {pid} is gone"
            elif (stale_after is not None and (last is None or now - last > stale_after)
                  and not mine):
                age = "ever" if last is None else f"{now - last:.0f} s"
                reason = f"interrupted: no heartbeat from its worker process {pid} on {host} for {age}"
            if reason is None:
                continue
            with self._write() as conn:
                # It ended at its last sign of life, not now (a run killed at 22 s must not show 47 s).
                cursor = conn.execute(
                    "UPDATE runs SET status = 'failed', error = ?, finished_at = ? "
                    "WHERE id = ? AND status = 'running' AND heartbeat_at IS ?",
                    (reason, now if last is None else min(now, last), run_id, heartbeat_at),
                )
                if cursor.rowcount:
                    marked.append(int(run_id))
        return marked

    def fail_runs_of_worker(self, pid: int, reason: str, host: str | None = None) -> list[int]:
        """Mark ``failed`` (with ``reason``) the runs that worker ``pid`` of ``host`` was running."""
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id FROM runs WHERE status = 'running' AND worker_pid = ? AND worker_host = ?",
                (int(pid), host or self.host),
            ).fetchall()
            for (run_id,) in rows:
                conn.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                             (reason, time.time(), run_id))
        return [int(r[0]) for r in rows]

    # --- metrics and probes ----------------------------------------------------------------------
    def append_metrics(self, run_id: int, rows: Iterable[MetricRow | Sequence[Any] | Mapping[str, Any]]) -> int:
        """Append metric rows ``(step, epoch, task, key, value)`` in one transaction; returns how many."""
        values = []
        for row in rows:
            if isinstance(row, Mapping):
                row = (row["step"], row.get("epoch"), row.get("task"), row["key"], row["value"])
            step, epoch, task, key, value = row
            values.append((int(step), None if epoch is None else int(epoch), None if task is None else str(task),
                           str(key), None if value is None else float(value)))
        return self.append_metric_tuples(run_id, values)

    def append_metric_tuples(self, run_id: int, rows: Sequence[tuple[int, int | None, str | None, str, float]]) -> int:
        """:meth:`append_metrics` without per-row conversion, for writers that build exact
        ``(int, int | None, str | None, str, float)`` tuples (the training-time recorder)."""
        if not rows:
            return 0
        with self._write() as conn:
            conn.executemany(
                f"INSERT INTO metrics (run_id, step, epoch, task, key, value) VALUES ({int(run_id)}, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def append_probes(self, run_id: int, rows: Iterable[ProbeRow | Sequence[Any] | Mapping[str, Any]]) -> int:
        """Append probe rows ``(step, epoch, kind, value, extra)`` (value: nested lists)."""
        values = []
        for row in rows:
            if isinstance(row, Mapping):
                row = (row["step"], row.get("epoch"), row["kind"], row["value"], row.get("extra") or {})
            step, epoch, kind, value, extra = row
            values.append((int(run_id), int(step), None if epoch is None else int(epoch), str(kind),
                           _dumps(value), _dumps(extra or {})))
        if not values:
            return 0
        with self._write() as conn:
            conn.executemany("INSERT INTO probes (run_id, step, epoch, kind, value, extra) VALUES (?, ?, ?, ?, ?, ?)",
                             values)
        return len(values)

    def metrics_after(self, run_id: int, step: int = -1, key: str | None = None) -> list[MetricRow]:
        """Every metric row of ``run_id`` with a step greater than ``step`` (all by default), in
        step order — one query on the ``(run_id, step)`` index. NaN values come back as NaN."""
        sql = "SELECT step, epoch, task, key, value FROM metrics WHERE run_id = ? AND step > ?"
        params: list[Any] = [int(run_id), int(step)]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        sql += " ORDER BY step, rowid"
        # SQLite stores NaN as NULL; the writer never stores NULL otherwise.
        return [MetricRow(s, e, t, k, math.nan if v is None else v) for s, e, t, k, v in self._read(sql, params)]

    def probes_after(self, run_id: int, step: int = -1, kind: str | None = None) -> list[ProbeRow]:
        """Every probe record of ``run_id`` after ``step``, in step order (one indexed query)."""
        sql = "SELECT step, epoch, kind, value, extra FROM probes WHERE run_id = ? AND step > ?"
        params: list[Any] = [int(run_id), int(step)]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " ORDER BY step, rowid"
        return [ProbeRow(s, e, k, json.loads(v), _loads(x) or {}) for s, e, k, v, x in self._read(sql, params)]

    def last_step(self, run_id: int) -> int | None:
        """The highest step with a metric row (None before the first)."""
        rows = self._read("SELECT MAX(step) FROM metrics WHERE run_id = ?", (int(run_id),))
        return rows[0][0]

    # --- studies ---------------------------------------------------------------------------------
    def create_study(
        self,
        study_id: str,
        kind: str,
        manifest: Mapping[str, Any],
        configs: Sequence[Mapping[str, Any] | Any],
        names: Sequence[str | None] | None = None,
        owner: str = DEFAULT_OWNER,
    ) -> list[int]:
        """Queue a study's (or grouping evaluation's) runs under ``group_id = study_id`` and record
        the study, in one transaction (all or none); returns the run ids in order. Raises
        :class:`StoreError` when ``study_id`` is taken."""
        if kind not in STUDY_KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(STUDY_KINDS)}, got {kind!r}")
        if not isinstance(study_id, str) or not study_id:
            raise ValueError(f"`study_id` must be a non-empty string, got {study_id!r}")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM studies WHERE id = ?", (study_id,)).fetchone():
                raise StoreError(f"a study with id {study_id!r} already exists in {self.path}")
            ids = self._insert_runs(conn, configs, names, owner, study_id)
            conn.execute(
                f"INSERT INTO studies ({_STUDY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (study_id, kind, owner, time.time(), _dumps(dict(manifest)), _dumps(ids)),
            )
        return ids

    @staticmethod
    def _study_record(row: Sequence[Any]) -> StudyRecord:
        return StudyRecord(id=row[0], kind=row[1], owner=row[2], created_at=row[3], manifest=_loads(row[4]) or {},
                           run_ids=[int(i) for i in _loads(row[5]) or []])

    def get_study(self, study_id: str) -> StudyRecord:
        """The study (or grouping evaluation) ``study_id``. Raises :class:`StudyNotFoundError`."""
        rows = self._read(f"SELECT {_STUDY_COLUMNS} FROM studies WHERE id = ?", (str(study_id),))
        if not rows:
            raise StudyNotFoundError(f"study {study_id!r} does not exist in {self.path}")
        return self._study_record(rows[0])

    def list_studies(self, kind: str | None = None, owner: str | None = None) -> list[StudyRecord]:
        """Studies of ``kind`` (all kinds when None), of ``owner`` when given, newest first."""
        clauses, params = [], []
        for column, value in (("kind", kind), ("owner", owner)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(str(value))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._read(f"SELECT {_STUDY_COLUMNS} FROM studies{where} ORDER BY created_at DESC, id DESC", params)
        return [self._study_record(row) for row in rows]

    def set_study_result(self, study_id: str, result: Mapping[str, Any]) -> None:
        """Keep the analysis of a finished study (see :meth:`get_study_result`)."""
        with self._write() as conn:
            conn.execute("UPDATE studies SET result = ? WHERE id = ?", (_dumps(dict(result)), str(study_id)))

    def get_study_result(self, study_id: str) -> dict[str, Any] | None:
        """The analysis kept by :meth:`set_study_result`, None when there is none."""
        rows = self._read("SELECT result FROM studies WHERE id = ?", (str(study_id),))
        return _loads(rows[0][0]) if rows and rows[0][0] else None

    def delete_study(self, study_id: str) -> None:
        """Forget a study record (its runs stay: delete them one by one)."""
        with self._write() as conn:
            conn.execute("DELETE FROM studies WHERE id = ?", (str(study_id),))

    # --- results ---------------------------------------------------------------------------------
    def set_result(self, run_id: int, result: Mapping[str, Any]) -> None:
        """Store the final run record (``run.json`` content), replacing any previous one."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO results (run_id, result, created_at) VALUES (?, ?, ?)",
                         (int(run_id), _dumps(dict(result)), time.time()))

    def get_result(self, run_id: int) -> dict[str, Any] | None:
        rows = self._read("SELECT result FROM results WHERE run_id = ?", (int(run_id),))
        return json.loads(rows[0][0]) if rows else None

    def export_run(self, run_id: int) -> dict[str, Any]:
        """Everything about one run, from one consistent snapshot: the run (with traceback), its
        metric rows, probe records and result."""
        with self._snapshot():
            record = self.get_run(run_id)
            metrics = self.metrics_after(run_id)
            probes = self.probes_after(run_id)
            result = self.get_result(run_id)
        return {
            "format": "mtl_lab.run_export/1",
            "run": record.to_dict(include_traceback=True),
            "metrics": [row._asdict() for row in metrics],
            "probes": [row._asdict() for row in probes],
            "result": result,
        }
