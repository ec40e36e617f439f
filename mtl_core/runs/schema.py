"""What the run store holds, apart from the store itself: the run states, the schema and its
migrations (:data:`MIGRATIONS`), the store's errors, the records it returns (:class:`RunRecord`,
:class:`StudyRecord`, :class:`MetricRow`, :class:`ProbeRow`) and the small helpers they share.

:class:`mtl_core.runs.store.RunStore` uses them, and :mod:`mtl_core.runs.store` re-exports every
public name, so ``from mtl_core.runs.store import RunRecord`` keeps working.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mtl_core.errors import MTLError
from mtl_core.settings import settings

#: Run states. ``queued`` → ``running`` → one of ``done`` / ``failed`` / ``cancelled``.
STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED_STATUSES = ("done", "failed", "cancelled")
DEFAULT_OWNER = "local"

#: ``PRAGMA application_id`` of an MTL Lab run store: the ASCII bytes "MTLL".
APPLICATION_ID = int.from_bytes(b"MTLL", "big")
_SQLITE_MAGIC = b"SQLite format 3\x00"

#: ``MIGRATIONS[v]`` upgrades a store from schema version ``v - 1`` to ``v``. A new store runs them
#: all from 0. To change the schema, append a step; never edit a released one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT,
            owner TEXT NOT NULL DEFAULT 'local',
            group_id TEXT,
            suite TEXT,
            strategy TEXT,
            method TEXT,
            config TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            error TEXT,
            traceback TEXT,
            worker_pid INTEGER,
            worker_host TEXT,
            heartbeat_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            info TEXT
        )""",
        "CREATE INDEX runs_status ON runs (status, id)",
        "CREATE INDEX runs_group ON runs (group_id)",
        "CREATE INDEX runs_owner ON runs (owner)",
        """CREATE TABLE metrics (
            run_id INTEGER NOT NULL,
            step INTEGER NOT NULL,
            epoch INTEGER,
            task TEXT,
            key TEXT NOT NULL,
            value REAL
        )""",
        "CREATE INDEX metrics_run_step ON metrics (run_id, step)",
        """CREATE TABLE probes (
            run_id INTEGER NOT NULL,
            step INTEGER NOT NULL,
            epoch INTEGER,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            extra TEXT
        )""",
        "CREATE INDEX probes_run_step ON probes (run_id, step)",
        "CREATE TABLE results (run_id INTEGER PRIMARY KEY, result TEXT NOT NULL, created_at REAL NOT NULL)",
    ),
    # Studies and grouping evaluations: ``id`` is their runs' ``group_id``; ``manifest`` what was
    # studied (a study's ``spec``; a grouping's ``study``, ``groups``, ``source``); ``run_ids`` the
    # runs in plan order; ``result`` the analysis of a finished one, computed once. Existing
    # manifest files (``$MTL_LAB_HOME/studies/*.json``) are imported by :func:`_import_study_manifests`.
    2: (
        """CREATE TABLE studies (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('study', 'grouping')),
            owner TEXT NOT NULL DEFAULT 'local',
            created_at REAL NOT NULL,
            manifest TEXT NOT NULL,
            run_ids TEXT NOT NULL,
            result TEXT
        )""",
        "CREATE INDEX studies_kind ON studies (kind, created_at)",
    ),
    # Whose turn it is: ``turn`` numbers each owner's latest claim of a worker (1, 2, … in claim
    # order), so :meth:`RunStore.claim_next` serves the owner who has waited longest. An upgraded
    # store numbers its owners by their latest start.
    3: (
        "CREATE TABLE owner_turns (owner TEXT PRIMARY KEY, turn INTEGER NOT NULL)",
        """INSERT INTO owner_turns (owner, turn)
            SELECT owner, ROW_NUMBER() OVER (ORDER BY MAX(started_at), owner) FROM runs
            WHERE started_at IS NOT NULL GROUP BY owner""",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)
#: The largest run id SQLite can hold (a signed 64-bit integer): a larger number names no run.
MAX_RUN_ID = 2**63 - 1
#: Kinds of rows of the ``studies`` table.
STUDY_KINDS = ("study", "grouping")

_BUSY_TIMEOUT_MS = 30_000
#: (device, inode) of the run-store files this process has checked and opened (see ``_prepare``).
_CHECKED_FILES: set[tuple[int, int]] = set()
#: A running run whose worker has not sent a heartbeat for this long is taken for dead. Only runs of
#: workers that no local pool supervisor owns are judged by it (a pool judges its own workers by their
#: processes): well above the busy timeout, so that a store locked by someone else for up to that long
#: (or a short disk-full spell) never reads as a dead worker.
HEARTBEAT_TIMEOUT = 120.0
_RUN_COLUMNS = (
    "id, name, owner, group_id, suite, strategy, method, config, status, created_at, started_at, "
    "finished_at, error, worker_pid, worker_host, heartbeat_at, cancel_requested, info"
)


class StoreError(MTLError):
    """The run store cannot be used: not a run store, corrupt, newer schema, locked, missing run."""


class StoreDamagedError(StoreError):
    """The run store file is corrupt (damaged pages): it cannot be used until it is moved aside or restored."""


#: SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGED_CODES = (11, 26)


class RunNotFoundError(StoreError, LookupError):
    """No run has this id."""


class RunStateError(StoreError):
    """The run is not in a state that allows the operation (e.g. deleting a running run)."""


class StudyNotFoundError(StoreError, LookupError):
    """No study (or grouping evaluation) with this id in the store."""


def lab_home(home: str | os.PathLike[str] | None = None) -> Path:
    """MTL Lab's data folder: ``home`` if given, else ``$MTL_LAB_HOME``, else ``~/.mtl_lab``."""
    if home is not None:
        return Path(home).expanduser()
    return settings().home


def default_store_path(home: str | os.PathLike[str] | None = None) -> Path:
    """``<lab home>/runs.db``."""
    return lab_home(home) / "runs.db"


class MetricRow(NamedTuple):
    """One scalar of a run's time series; ``task`` is None for run-level values."""

    step: int
    epoch: int | None
    task: str | None
    key: str
    value: float


class ProbeRow(NamedTuple):
    """One probe record: a T × T matrix or a length-T vector (nested lists) at ``step``."""

    step: int
    epoch: int | None
    kind: str
    value: Any
    extra: dict[str, Any]


def as_run_id(text: str) -> int | None:
    """The run id written in ``text`` (digits, optionally after ``#``, from 1 to :data:`MAX_RUN_ID`);
    None when ``text`` is not one. Pages and the CLI phrase their own message around it."""
    digits = str(text).strip().removeprefix("#").lstrip("0")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(MAX_RUN_ID)) or int(digits) > MAX_RUN_ID:
        return None
    return int(digits)


def run_duration(started_at: float | None, finished_at: float | None) -> float | None:
    """Seconds from ``started_at`` to ``finished_at`` (to now while unfinished); None before a start."""
    if started_at is None:
        return None
    end = finished_at if finished_at is not None else time.time()
    return max(0.0, end - started_at)


@dataclass
class RunRecord:
    """One row of the ``runs`` table. Times are Unix seconds."""

    id: int
    name: str | None
    owner: str
    group_id: str | None
    suite: str | None
    strategy: str | None
    method: str | None
    config: dict[str, Any]
    status: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    worker_pid: int | None = None
    worker_host: str | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    info: dict[str, Any] | None = None
    traceback: str | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (to now while running); None before it starts."""
        return run_duration(self.started_at, self.finished_at)

    def to_dict(self, include_traceback: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "group_id": self.group_id,
            "suite": self.suite,
            "strategy": self.strategy,
            "method": self.method,
            "status": self.status,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "worker_pid": self.worker_pid,
            "worker_host": self.worker_host,
            "heartbeat_at": self.heartbeat_at,
            "cancel_requested": self.cancel_requested,
            "config": self.config,
            "info": self.info,
        }
        if include_traceback:
            out["traceback"] = self.traceback
        return out


@dataclass
class StudyRecord:
    """One row of the ``studies`` table: a transfer study (``kind="study"``, its ``manifest`` holds
    its ``spec``, and ``lesson`` when a lesson launched it) or a grouping evaluation
    (``kind="grouping"``: ``study``, ``groups``, ``source``). ``id`` is its runs' ``group_id``;
    ``run_ids`` are in plan order."""

    id: str
    kind: str
    owner: str
    created_at: float
    manifest: dict[str, Any]
    run_ids: list[int]

    def to_dict(self) -> dict[str, Any]:
        """The record as a manifest file held it (``group_id`` for ``id``), with ``owner``."""
        return {**self.manifest, "kind": self.kind, "group_id": self.id, "owner": self.owner,
                "created_at": self.created_at, "run_ids": list(self.run_ids)}


_STUDY_COLUMNS = "id, kind, owner, created_at, manifest, run_ids"
#: Keys of a manifest file that are columns of the ``studies`` table, not part of its ``manifest``.
_MANIFEST_COLUMNS = ("group_id", "kind", "created_at", "run_ids", "owner")


def _study_row(path: Path) -> tuple[str, str, float, dict[str, Any], list[int]] | None:
    """(id, kind, created_at, manifest, run ids) of a study manifest file, None when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    study_id, kind, run_ids = data.get("group_id"), data.get("kind", "study"), data.get("run_ids")
    if not isinstance(study_id, str) or study_id != path.stem or kind not in STUDY_KINDS:
        return None
    if not isinstance(run_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in run_ids):
        return None
    created = data.get("created_at")
    created_at = float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else 0.0
    manifest = {key: value for key, value in data.items() if key not in _MANIFEST_COLUMNS}
    return study_id, kind, created_at, manifest, run_ids


def _import_study_manifests(conn: sqlite3.Connection, home: Path) -> None:
    """Schema 2: copy the study and grouping manifests the app wrote as files
    (``<home>/studies/<id>.json``) into the ``studies`` table, with the cached analysis of a
    finished study (``<id>.result.json``) when there is one. The owner is that of the study's first
    run. The files stay where they are; a file that is not a manifest is left out."""
    folder = home / "studies"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith(".") or path.name.endswith(".result.json"):
            continue
        row = _study_row(path)
        if row is None:
            continue
        study_id, kind, created_at, manifest, run_ids = row
        owner = conn.execute(
            f"SELECT owner FROM runs WHERE id IN ({', '.join('?' * len(run_ids))}) ORDER BY id LIMIT 1", run_ids
        ).fetchone() if run_ids else None
        result = None
        cached = folder / f"{study_id}.result.json"
        if kind == "study" and cached.is_file():
            try:
                result = _dumps(json.loads(cached.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                result = None
        conn.execute(
            f"INSERT OR IGNORE INTO studies ({_STUDY_COLUMNS}, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (study_id, kind, owner[0] if owner else DEFAULT_OWNER, created_at, _dumps(manifest), _dumps(run_ids),
             result),
        )


#: Steps of a migration that SQL alone cannot do: ``MIGRATION_STEPS[v](conn, home)`` runs after the
#: statements of ``MIGRATIONS[v]``, in the same transaction, when an existing store is upgraded.
MIGRATION_STEPS: dict[int, Callable[[sqlite3.Connection, Path], None]] = {2: _import_study_manifests}


def _config_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a mapping or a TrainConfig, got {type(config).__name__}")
    return dict(config)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _rollback(conn: sqlite3.Connection) -> None:
    """End a failed transaction; a failure to do so (a damaged file) never hides the first error."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (an exited one not yet reaped, a
    zombie, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal check is all we have
