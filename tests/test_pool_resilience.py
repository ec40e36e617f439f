"""No healthy run is killed: a store locked by another process, made read-only or full delays writes
but never fails a run whose worker lives; failed writes are retried with back-off, nothing buffered
is lost, and the log does not flood.

The pool tests share one pool (2 workers, warm after the first test); every process it started is
stopped at the end of the module (see ``tests/test_workers.py``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_workers import SMALL, TIMEOUT, _assert_complete_series, _running_with_steps, _stop_all, wait_until

from mtl_core.runs.recorder import _Backoff
from mtl_core.runs.store import RunStore
from mtl_core.runs.workers import RepeatFilter, execute_run, submit, wait

#: Several seconds of training per run: the lock is taken while one trains, the others queued behind it.
MEDIUM = {**SMALL, "epochs": 1000}  # ~4 000 steps: 5-10 s on one core


# --- the pieces: back-off and the rate-limited log ---------------------------------------------------
def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = _Backoff(first=0.25, cap=2.0)
    assert [backoff.failed() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    backoff.succeeded()
    assert backoff.failed() == 0.25


def test_the_same_message_is_logged_once_per_window_with_a_count() -> None:
    now = [0.0]
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    handler.addFilter(RepeatFilter(window=10.0, clock=lambda: now[0]))
    logger = logging.getLogger("test_pool_resilience.flood")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for _ in range(1000):  # a second of a store that refuses every write
            logger.warning("run %s: store write failed: %s", 7, "database or disk is full")
            now[0] += 0.001
        logger.warning("run %s: store write failed: %s", 8, "database or disk is full")  # another run: its own line
        now[0] += 10.0
        logger.warning("run %s: store write failed: %s", 7, "database or disk is full")
    finally:
        logger.removeHandler(handler)
    assert lines == [
        "run 7: store write failed: database or disk is full",
        "run 8: store write failed: database or disk is full",
        "run 7: store write failed: database or disk is full (and 999 more like it in 10 s)",
    ]


# --- a full disk, in this process ---------------------------------------------------------------------
class _FullDisk:
    """Wraps a store's connections so that every write transaction fails with SQLite's ``error``
    (disk full, read-only file) while ``full`` is set; reads still work, as on a real full disk."""

    def __init__(self, store: RunStore, error: str = "database or disk is full") -> None:
        self.full = threading.Event()
        self.refused = 0
        original = store._connection

        class Connection:
            def __init__(self, conn: sqlite3.Connection) -> None:
                self._conn = conn

            def execute(inner, sql: str, *args: Any) -> Any:  # noqa: N805 - reads as the wrapper's own
                if self.full.is_set() and sql.startswith("BEGIN IMMEDIATE"):
                    self.refused += 1
                    raise sqlite3.OperationalError(error)
                return inner._conn.execute(sql, *args)

            def __getattr__(inner, name: str) -> Any:  # noqa: N805
                return getattr(inner._conn, name)

        store._connection = lambda: Connection(original())  # type: ignore[method-assign]


# A store made read-only (chmod) does not stop connections already open, so the error a read-only
# store gives a writer is injected the same way as a full disk's.
@pytest.mark.parametrize("error", ["database or disk is full", "attempt to write a readonly database"])
def test_a_full_disk_or_read_only_store_delays_the_writes_and_loses_no_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    store = RunStore.at_home(tmp_path)
    run_id = store.create_run({**SMALL, "epochs": 40})
    run = store.claim_run(run_id, pid=os.getpid())
    disk = _FullDisk(store, error)
    disk.full.set()
    threading.Timer(4.0, disk.full.clear).start()  # the disk fills up before the run and frees 4 s later
    with caplog.at_level(logging.WARNING, logger="mtl_core.runs.workers"):
        assert execute_run(store, run) == "done"
    assert disk.refused > 0
    assert store.get_run(run_id).status == "done"
    _assert_complete_series(store, run_id)
    # back-off: a handful of retries in 4 s, not one per event
    assert 0 < len(caplog.records) <= 25, [r.getMessage() for r in caplog.records]
    assert all(error in r.getMessage() for r in caplog.records)


# --- the pool, with another process in the way --------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("resilient_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MTL_LAB_WORKERS", "2")
    patch.setenv("MTL_LAB_POOL_IDLE_EXIT", "30")
    yield home
    leftovers = _stop_all(home)
    patch.undo()
    assert leftovers == [], f"processes left running after the pool stopped: {leftovers}"


def _hold_exclusive_lock(database: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that holds ``BEGIN EXCLUSIVE`` on the store for ``seconds``; returns once it holds it."""
    code = (
        "import sqlite3, sys, time\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n"
        "conn.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "conn.execute('COMMIT')\n"
    )
    locker = subprocess.Popen([sys.executable, "-c", code, str(database), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    return locker


def _start_training(lab: Path, count: int) -> tuple[RunStore, list[int]]:
    store = RunStore.at_home(lab)
    ids = submit([{**MEDIUM, "seed": seed} for seed in range(count)], home=lab)
    # One run training is enough to take the lock on (two at once may never happen: a quick run can
    # finish before the second worker has imported torch).
    wait_until(lambda: any(_running_with_steps(store, i) for i in ids), TIMEOUT)
    return store, ids


def _assert_all_done_and_complete(store: RunStore, ids: list[int], lab: Path) -> None:
    statuses = wait(ids, timeout=TIMEOUT, home=lab)
    errors = {i: store.get_run(i).error for i in ids if statuses[i] != "done"}
    assert errors == {}, f"healthy runs did not finish: {errors}"
    for run_id in ids:
        _assert_complete_series(store, run_id)


def _log_lines(lab: Path) -> int:
    return sum(len(path.read_text(errors="replace").splitlines()) for path in (lab / "logs").glob("pool.log*"))


@pytest.mark.parametrize("seconds", [10.0, pytest.param(35.0, marks=pytest.mark.slow)])
def test_an_exclusive_lock_held_elsewhere_kills_no_run(lab: Path, seconds: float) -> None:
    """10 s: far beyond the old 6 s heartbeat timeout; 35 s: beyond SQLite's 30 s busy timeout too,
    so writes fail and are retried."""
    lines_before = _log_lines(lab)
    store, ids = _start_training(lab, 3)  # runs train through the lock or wait to be claimed
    locker = _hold_exclusive_lock(store.path, seconds)
    assert all(store.get_run(i).status in ("running", "queued") for i in ids)  # reads go on in WAL mode
    locker.wait(timeout=seconds + 30)
    _assert_all_done_and_complete(store, ids, lab)
    assert _log_lines(lab) - lines_before < 200  # no flood: was ~1 100 lines a second

