"""The SQLite run store: schema, runs, metrics, probes, recovery, concurrency, foreign files."""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mtl_core.errors import MTLError
from mtl_core.runs import store as store_module
from mtl_core.runs.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    RunNotFoundError,
    RunStateError,
    RunStore,
    StoreError,
    default_store_path,
)
from mtl_core.runs.workers import StoreRecorder
from mtl_core.training.events import EpochEvent, ProbeEvent, StepEvent

CONFIG = {"suite": "planted", "strategy": "hard", "method": "ew", "epochs": 2}


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    with RunStore(tmp_path / "runs.db") as opened:
        yield opened


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _fingerprint(path: Path) -> tuple[str, int, list[str]]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


# --- creation and identity -------------------------------------------------------------------------
def test_created_on_first_use_under_mtl_lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "lab"
    monkeypatch.setenv("MTL_LAB_HOME", str(home))
    assert not home.exists()
    opened = RunStore()
    assert opened.path == (home / "runs.db").absolute() == default_store_path().absolute()
    conn = sqlite3.connect(opened.path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
    conn.close()
    opened.close()
    # reopening keeps the data; a folder path means folder/runs.db
    RunStore(home).create_run(CONFIG)
    assert len(RunStore(home / "runs.db").list_runs()) == 1


def test_migration_step_upgrades_an_older_store_and_keeps_its_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as old:
        run_id = old.create_run(CONFIG, name="kept")
    upgraded = dict(store_module.MIGRATIONS)
    upgraded[SCHEMA_VERSION + 1] = ("ALTER TABLE runs ADD COLUMN note TEXT",)
    monkeypatch.setattr(store_module, "MIGRATIONS", upgraded)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with RunStore(path) as new:
        assert new.schema_version == SCHEMA_VERSION + 1
        assert new.get_run(run_id).name == "kept"
        columns = {row[1] for row in new._connection().execute("PRAGMA table_info(runs)")}
        assert "note" in columns


def test_a_text_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_text("these are my notes, not a database\n")
    before = _fingerprint(path)
    with pytest.raises(StoreError, match="not an SQLite database") as info:
        RunStore(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, MTLError)
    assert _fingerprint(path) == before


def test_another_applications_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    conn.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    conn.commit()
    conn.close()
    before = _fingerprint(path)
    with pytest.raises(StoreError, match="another application.*invoices"):
        RunStore(path)
    assert _fingerprint(path) == before


def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    before = _fingerprint(path)
    with pytest.raises(StoreError, match="corrupt|cannot be opened"):
        RunStore(path)
    assert _fingerprint(path) == before


def test_a_store_from_a_newer_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    RunStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = _fingerprint(path)[:2]
    with pytest.raises(StoreError, match="newer"):
        RunStore(path)
    assert _fingerprint(path)[:2] == before


# --- runs ------------------------------------------------------------------------------------------------
def test_create_list_filter_and_get_runs(store: RunStore) -> None:
    a = store.create_run(CONFIG, name="a")
    b, c = store.create_runs([{**CONFIG, "method": "pcgrad"}, {**CONFIG, "suite": "digits"}],
                             owner="alice", group_id="study-1")
    assert a < b < c
    record = store.get_run(b)
    assert (record.status, record.owner, record.group_id, record.method, record.suite) == (
        "queued", "alice", "study-1", "pcgrad", "planted")
    assert record.config["method"] == "pcgrad" and record.started_at is None
    assert [r.id for r in store.list_runs()] == [c, b, a]
    assert [r.id for r in store.list_runs(newest_first=False, limit=2)] == [a, b]
    assert [r.id for r in store.list_runs(owner="alice")] == [c, b]
    assert [r.id for r in store.list_runs(group_id="study-1", suite="digits")] == [c]
    assert [r.id for r in store.list_runs(method="pcgrad")] == [b]
    assert store.count_runs("queued") == 3 and store.count_runs(owner="local") == 1
    with pytest.raises(RunNotFoundError, match="run 999 does not exist"):
        store.get_run(999)
    with pytest.raises(ValueError, match="`status` must be one of"):
        store.list_runs(status="finished")


def test_a_batch_is_all_or_nothing(store: RunStore) -> None:
    with pytest.raises(TypeError):
        store.create_runs([CONFIG, "not a config"])
    assert store.list_runs() == []


def test_claim_takes_each_queued_run_exactly_once_across_threads(store: RunStore) -> None:
    ids = store.create_runs([CONFIG] * 40)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(pid: int) -> None:
        while (run := store.claim_next(pid=pid)) is not None:
            with lock:
                claimed.append(run.id)

    threads = [threading.Thread(target=claimer, args=(1000 + i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids
    assert store.count_runs("running") == 40
    running = store.get_run(ids[0])
    assert running.heartbeat_at is not None and running.worker_host == store.host


def test_claims_share_the_workers_fairly_between_owners(store: RunStore) -> None:
    lesson = store.create_runs([CONFIG] * 5, owner="alice")  # alice queues a whole lesson first
    bob = store.create_runs([CONFIG] * 2, owner="bob")
    carol = store.create_run(CONFIG, owner="carol")
    order = [store.claim_next(pid=1).id for _ in range(5)]
    # nobody waits for alice's five runs: one each, then the oldest of the owners with fewest running
    assert order == [lesson[0], bob[0], carol, lesson[1], bob[1]]
    store.set_status(lesson[0], "done")
    store.set_status(lesson[1], "done")
    assert store.claim_next(pid=1).id == lesson[2]  # within an owner: first in, first out


def test_finish_cancel_and_delete_follow_the_run_state(store: RunStore) -> None:
    queued, running, done = store.create_runs([CONFIG] * 3)
    assert store.request_cancel(queued) == "cancelled"
    assert store.get_run(queued).status == "cancelled" and store.get_run(queued).finished_at is not None
    store.claim_run(running, pid=os.getpid())
    assert not store.cancel_requested(running)
    assert store.request_cancel(running) == "requested"
    assert store.cancel_requested(running) and store.get_run(running).status == "running"
    store.claim_run(done, pid=os.getpid())
    assert store.claim_run(done) is None  # no longer queued
    assert not store.finish_run(done, "done", pid=os.getpid() + 1)  # not that worker's run
    assert store.finish_run(done, "done", pid=os.getpid())
    with pytest.raises(RunStateError, match="already done"):
        store.request_cancel(done)
    with pytest.raises(RunStateError, match="running; cancel it first"):
        store.delete_run(running)
    store.append_metrics(done, [(1, 1, "t1", "train_loss", 0.5)])
    store.set_result(done, {"status": "done"})
    store.delete_run(done)
    with pytest.raises(RunNotFoundError):
        store.get_run(done)
    assert store.metrics_after(done) == [] and store.get_result(done) is None


def test_recover_interrupted_fails_runs_whose_worker_is_gone(store: RunStore) -> None:
    dead, alive, stale, elsewhere = store.create_runs([CONFIG] * 4)
    store.claim_run(dead, pid=_dead_pid())
    store.claim_run(alive, pid=os.getpid())
    store.claim_run(stale, pid=os.getpid())
    store.claim_run(elsewhere, pid=_dead_pid(), host="another-host")
    old = time.time() - 60
    conn = store._connection()
    conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id IN (?, ?)", (old, stale, elsewhere))
    # without judging heartbeats: only the dead local process counts
    assert store.recover_interrupted(stale_after=None) == [dead]
    assert store.get_run(dead).status == "failed"
    assert store.get_run(dead).error.startswith("interrupted: its worker process")
    assert sorted(store.recover_interrupted(stale_after=10)) == [stale, elsewhere]
    assert "no heartbeat" in store.get_run(elsewhere).error
    assert store.get_run(alive).status == "running"
    assert store.fail_runs_of_worker(os.getpid(), "worker died") == [alive]
    assert store.get_run(alive).error == "worker died"


# --- metrics, probes, results ------------------------------------------------------------------------
def test_metrics_after_is_one_indexed_query_in_step_order(store: RunStore) -> None:
    run_id = store.create_run(CONFIG)
    other = store.create_run(CONFIG)
    rows = [(step, 1 + step // 10, task, "train_loss", step + 0.5) for step in range(1, 31) for task in ("t1", "t2")]
    assert store.append_metrics(run_id, rows) == 60
    store.append_metrics(run_id, [{"step": 30, "epoch": 3, "task": None, "key": "epoch_seconds", "value": math.nan}])
    store.append_metrics(other, [(99, 1, "t1", "train_loss", 1.0)])
    after = store.metrics_after(run_id, 28)
    assert [(r.step, r.task) for r in after] == [(29, "t1"), (29, "t2"), (30, "t1"), (30, "t2"), (30, None)]
    assert math.isnan(after[-1].value) and after[0].value == 29.5
    assert len(store.metrics_after(run_id)) == 61
    assert [r.key for r in store.metrics_after(run_id, 0, key="epoch_seconds")] == ["epoch_seconds"]
    assert store.last_step(run_id) == 30 and store.last_step(store.create_run(CONFIG)) is None
    plan = " ".join(str(row) for row in store._connection().execute(
        "EXPLAIN QUERY PLAN SELECT step, epoch, task, key, value FROM metrics WHERE run_id = ? AND step > ? "
        "ORDER BY step, rowid", (run_id, 28)))
    assert "USING INDEX metrics_run_step" in plan and "TEMP B-TREE" not in plan


def test_probes_and_results_round_trip(store: RunStore) -> None:
    run_id = store.create_run(CONFIG)
    matrix = [[1.0, -0.25], [-0.25, 1.0]]
    store.append_probes(run_id, [(10, 1, "cosine", matrix, {"layer": "shared"}), (10, 1, "norms", [0.5, 2.0], {}),
                                 (20, 2, "cosine", matrix, None)])
    probes = store.probes_after(run_id, 9)
    assert [(p.step, p.kind) for p in probes] == [(10, "cosine"), (10, "norms"), (20, "cosine")]
    assert probes[0].value == matrix and probes[0].extra == {"layer": "shared"} and probes[2].extra == {}
    assert [p.step for p in store.probes_after(run_id, 10, kind="cosine")] == [20]
    result = {"status": "done", "final_metrics": {"t1": {"value": 0.25}}, "history": [{"epoch": 1}]}
    store.set_result(run_id, result)
    assert store.get_result(run_id) == result
    exported = store.export_run(run_id)
    assert exported["run"]["id"] == run_id and exported["result"] == result
    assert exported["probes"][1]["value"] == [0.5, 2.0]


# --- the recorder and concurrent access -------------------------------------------------------------------
def _feed(recorder: StoreRecorder, epochs: int, steps_per_epoch: int, pause: float = 0.0) -> None:
    step = 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 1
            recorder.on_step(StepEvent(step, epoch, epochs * steps_per_epoch, {"t1": step * 1.0, "t2": -step * 1.0},
                                       {"t1": 0.5, "t2": 0.5}))
            if step % 5 == 0:
                recorder.on_probe(ProbeEvent(step, epoch, "cosine", [[1.0, 0.1], [0.1, 1.0]]))
            if pause:
                time.sleep(pause)
        time.sleep(pause * 15)  # validation takes a while: the writer flushes in between
        recorder.on_epoch_end(EpochEvent(epoch, epochs, step, {"t1": 1.0, "t2": 2.0}, {"t1": 1.5, "t2": 2.5},
                                         {"t1": 0.1, "t2": 0.2}, 0.01))


def test_live_readers_see_every_row_exactly_once_while_the_recorder_writes(store: RunStore) -> None:
    run_id = store.create_run(CONFIG)
    store.claim_run(run_id, pid=os.getpid())
    epochs, steps = 4, 25
    finished = threading.Event()
    seen: dict[int, list] = {}
    errors: list[BaseException] = []

    def reader(index: int) -> None:
        rows: list = []
        cursor = -1
        try:
            while True:
                done = finished.is_set()
                new = store.metrics_after(run_id, cursor)  # the live-view pattern: after the last step seen
                rows.extend(new)
                if new:
                    cursor = new[-1].step
                if done:
                    break
                time.sleep(0.003)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        seen[index] = rows

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in readers:
        t.start()
    with StoreRecorder(store, run_id, flush_interval=0.01, heartbeat_interval=0.05) as recorder:
        _feed(recorder, epochs, steps, pause=0.002)
    finished.set()
    for t in readers:
        t.join()
    assert not errors
    full = store.metrics_after(run_id)
    assert len(full) == epochs * steps * 4 + epochs * 7
    for rows in seen.values():
        assert rows == full
    assert len(store.probes_after(run_id)) == epochs * steps // 5
    assert store.get_run(run_id).heartbeat_at > store.get_run(run_id).started_at


_WRITER = """
import sys
from mtl_core.runs.store import RunStore
store = RunStore(sys.argv[1])
run_id = store.create_run({"suite": "planted"})
for batch in range(40):
    store.append_metrics(run_id, [(batch * 10 + i, 1, "t1", "train_loss", float(i)) for i in range(10)])
    store.heartbeat(run_id)
print(run_id)
"""


def test_many_processes_write_at_once_while_this_one_reads(store: RunStore) -> None:
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(store.path)], stdout=subprocess.PIPE, text=True)
               for _ in range(4)]
    reads = 0
    while any(w.poll() is None for w in writers):
        for record in store.list_runs():
            store.metrics_after(record.id, -1)
            reads += 1
        time.sleep(0.01)
    outputs = [w.communicate(timeout=60) for w in writers]
    assert all(w.returncode == 0 for w in writers), outputs
    run_ids = [int(out) for out, _ in outputs]
    assert len(set(run_ids)) == 4
    for run_id in run_ids:
        rows = store.metrics_after(run_id)
        assert [r.step for r in rows] == list(range(400))


def test_recorder_stops_on_cancel_or_shutdown_and_flushes_held_rows(store: RunStore) -> None:
    run_id = store.create_run(CONFIG)
    store.claim_run(run_id, pid=os.getpid())
    recorder = StoreRecorder(store, run_id, cancel_poll_interval=0.0)
    recorder.on_step(StepEvent(1, 1, 10, {"t1": 1.0}))
    assert not recorder.should_stop()
    recorder.flush()
    assert store.metrics_after(run_id) == []  # the newest step waits for the next one
    recorder.on_step(StepEvent(2, 1, 10, {"t1": 1.0}))
    recorder.flush()
    assert [r.step for r in store.metrics_after(run_id)] == [1]
    store.request_cancel(run_id)
    assert recorder.should_stop() and recorder.stop_reason == "cancel"
    recorder.close()
    assert [r.step for r in store.metrics_after(run_id)] == [1, 2]

    stop = threading.Event()
    other = store.create_run(CONFIG)
    shutdown = StoreRecorder(store, other, stop_event=stop)
    assert not shutdown.should_stop()
    stop.set()
    assert shutdown.should_stop() and shutdown.stop_reason == "shutdown"
