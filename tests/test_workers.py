"""The background worker pool with real processes: submit, finish, kill -9, cancel, restart.

Every pool started here is stopped at the end of its test or module, and every supervisor or worker
process that a pool log names is checked dead (and killed by pid if not).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mtl_core.errors import ConfigError
from mtl_core.runs.store import RunStore
from mtl_core.runs.workers import (
    cancel,
    ensure_pool,
    note_page_open,
    pool_running,
    pool_status,
    stop_pool,
    submit,
    wait,
)

SMALL = {
    "suite": "planted",
    "suite_options": {"n_samples": 200, "dim": 8, "n_tasks": 2, "n_groups": 1},
    "strategy_options": {"hidden": 8, "depth": 1},
    "epochs": 2,
}
LONG = {**SMALL, "epochs": 5000}  # always cancelled, killed or interrupted long before its end
TIMEOUT = 240.0  # generous: the first run of a worker waits for torch to import on a busy machine


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Seconds it took for ``predicate`` to hold; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - start


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        with open(f"/proc/{pid}/stat", "rb") as fh:
            zombie = fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return False
    return b"mtl_core" in cmdline and not zombie


def _pool_pids(home: Path) -> tuple[list[int], list[int]]:
    """(supervisor pids, worker pids) named in the pool log of ``home``."""
    text = ""
    for log in (home / "logs").glob("*.log"):
        text += log.read_text(errors="replace")
    supervisors = [int(p) for p in re.findall(r"pool (\d+) serving", text)]
    workers = [int(p) for p in re.findall(r"started worker (\d+)", text)]
    return supervisors, workers


def _stop_all(home: Path) -> list[int]:
    """Stop the pool of ``home``; kill by pid any of its processes still alive. Returns those."""
    stop_pool(home, timeout=20)
    supervisors, workers = _pool_pids(home)
    deadline = time.monotonic() + 5  # the lock is released just before the process exits
    while (leftovers := [pid for pid in supervisors + workers if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    return leftovers


def _running_with_steps(store: RunStore, run_id: int) -> bool:
    return store.get_run(run_id).status == "running" and (store.last_step(run_id) or 0) > 5


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home whose pool is started on demand by submit (2 workers) and stopped at the end."""
    home = tmp_path_factory.mktemp("pool_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MTL_LAB_WORKERS", "2")
    patch.setenv("MTL_LAB_POOL_IDLE_EXIT", "30")
    yield home
    leftovers = _stop_all(home)
    patch.undo()
    assert leftovers == [], f"processes left running after the pool stopped: {leftovers}"


def _assert_complete_series(store: RunStore, run_id: int) -> None:
    result = store.get_result(run_id)
    assert result is not None and result["status"] == "done"
    rows = store.metrics_after(run_id)
    steps, epochs, n_tasks = result["steps"], len(result["history"]), len(result["tasks"])
    by_key: dict[str, list] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    assert len(by_key["train_loss"]) == steps * n_tasks
    assert sorted({r.step for r in by_key["train_loss"]}) == list(range(1, steps + 1))
    assert len(by_key["val_loss"]) == len(by_key["val_metric"]) == epochs * n_tasks
    assert len(by_key["epoch_seconds"]) == epochs
    last_val = {r.task: r.value for r in by_key["val_loss"] if r.epoch == epochs}
    assert last_val == pytest.approx(result["history"][-1]["val_loss"])


def test_twenty_runs_submitted_from_four_threads_all_finish(lab: Path) -> None:
    pools_before = len(_pool_pids(lab)[0])
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        try:
            got = submit([{**SMALL, "seed": 5 * k + j} for j in range(5)], home=lab, group_id=f"client-{k}")
            with lock:
                ids.extend(got)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 20
    statuses = wait(ids, timeout=TIMEOUT, home=lab)
    assert set(statuses.values()) == {"done"}
    store = RunStore.at_home(lab)
    for run_id in ids:
        _assert_complete_series(store, run_id)
    assert {r.group_id for r in store.list_runs(status="done")} == {f"client-{k}" for k in range(4)}
    assert len(_pool_pids(lab)[0]) - pools_before <= 1  # concurrent submitters started one pool at most
    info = pool_status(lab)
    assert info is not None and info["max_workers"] == 2
    assert len({store.get_run(i).worker_pid for i in ids}) <= 2


def test_bad_configs_fail_at_submit_and_nothing_is_queued(lab: Path) -> None:
    store = RunStore.at_home(lab)
    before = store.count_runs()
    with pytest.raises(ConfigError, match="`epochs` must be"):
        submit({**SMALL, "epochs": 0}, home=lab)
    with pytest.raises(ConfigError, match=r"`configs\[1\]\.method` must be one of"):
        submit([SMALL, {**SMALL, "method": "no_such_method"}], home=lab)
    assert store.count_runs() == before


def test_a_run_that_raises_is_failed_with_its_error_and_traceback(lab: Path) -> None:
    (run_id,) = submit({**SMALL, "optimizer": "sgd", "lr": 10.0, "epochs": 3}, home=lab)
    assert wait([run_id], timeout=TIMEOUT, home=lab)[run_id] == "failed"
    record = RunStore.at_home(lab).get_run(run_id)
    assert "NaN" in record.error and "\n" not in record.error
    assert record.traceback.startswith("Traceback") and "TrainingError" in record.traceback
    assert "traceback" not in record.to_dict()  # kept in the store, out of what pages show


def test_cancel_stops_a_running_run_quickly_and_keeps_its_metrics(lab: Path) -> None:
    store = RunStore.at_home(lab)
    (run_id,) = submit(LONG, home=lab)
    wait_until(lambda: _running_with_steps(store, run_id), TIMEOUT)
    assert cancel(run_id, home=lab) == "requested"
    seconds = wait_until(lambda: store.get_run(run_id).status == "cancelled", 10, interval=0.05)
    assert seconds < 4.0  # ~1 s expected; slack for a busy machine
    record = store.get_run(run_id)
    assert record.error is None and record.finished_at is not None
    result = store.get_result(run_id)
    assert result["status"] == "cancelled"
    last = store.last_step(run_id)
    assert 5 < last <= result["steps"] < 5000 * 4


def test_kill_9_fails_only_that_run_and_the_pool_replaces_the_worker(lab: Path) -> None:
    store = RunStore.at_home(lab)
    (victim_run,) = submit(LONG, home=lab)
    wait_until(lambda: _running_with_steps(store, victim_run), TIMEOUT)
    victim = store.get_run(victim_run).worker_pid
    workers_before = {w["pid"] for w in (pool_status(lab) or {}).get("workers", [])}
    os.kill(victim, signal.SIGKILL)
    seconds = wait_until(lambda: store.get_run(victim_run).status == "failed", 10, interval=0.05)
    assert seconds < 10
    record = store.get_run(victim_run)
    assert str(victim) in record.error and "SIGKILL" in record.error
    assert (store.last_step(victim_run) or 0) > 5  # partial metrics kept
    # more work than the surviving worker can take at once: the pool starts a replacement. The runs
    # must outlast a few supervisor ticks (0.5 s): a warm survivor finished three 40-epoch runs in
    # 0.65 s, before the supervisor looked at the queue again, and no replacement was needed.
    others = submit([{**SMALL, "epochs": 600, "seed": seed} for seed in (1, 2, 3)], home=lab)

    def replaced() -> bool:
        pids = {w["pid"] for w in (pool_status(lab) or {}).get("workers", [])}
        return victim not in pids and bool(pids - workers_before)

    try:
        wait_until(replaced, 30)  # the pool notices within a tick; 30 s leaves room on a busy CI machine
    except pytest.fail.Exception:
        log = lab / "logs" / "pool.log"
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:] if log.exists() else "(no pool log)"
        pytest.fail(f"no replacement worker; pool status {pool_status(lab)}; pool log:\n{tail}")
    assert set(wait(others, timeout=TIMEOUT, home=lab).values()) == {"done"}


def test_an_open_page_keeps_a_worker_ready_past_the_idle_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the dashboard does (services.catalog.keep_workers_ready): say a page is open, start the pool.
    # A run queued after the idle exit has passed then starts at once, with no worker to start first.
    home = tmp_path / "lab"
    monkeypatch.setenv("MTL_LAB_POOL_IDLE_EXIT", "2")
    monkeypatch.setenv("MTL_LAB_WORKERS", "1")
    store = RunStore.at_home(home)
    stop_paging = threading.Event()

    def page() -> None:  # the sidebar's refresh while the tab is open
        while not stop_paging.is_set():
            note_page_open(home)
            stop_paging.wait(0.5)

    pager = threading.Thread(target=page, daemon=True)
    pager.start()
    try:
        assert ensure_pool(home) is not None
        log = home / "logs" / "pool.log"
        wait_until(lambda: log.exists() and " ready" in log.read_text(), TIMEOUT)  # loaded before any run
        time.sleep(3.0)  # longer than the idle exit: the open page keeps the pool
        assert pool_running(home)
        (run_id,) = submit(SMALL, home=home)
        assert wait_until(lambda: store.get_run(run_id).status != "queued", 30, interval=0.05) < 3.0  # ~0.2 s
        assert wait([run_id], timeout=TIMEOUT, home=home) == {run_id: "done"}
        stop_paging.set()  # the tab is closed: the pool exits idle 2 + 2 s (grace) after the page's last call
        assert wait_until(lambda: not pool_running(home), 30) < 15
    finally:
        stop_paging.set()
        pager.join()
        assert _stop_all(home) == []


def _start_server(home: Path, workers: int) -> subprocess.Popen[bytes]:
    (home / "logs").mkdir(parents=True, exist_ok=True)
    with open(home / "logs" / "server.log", "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mtl_core", "worker", "--workers", str(workers), "--home", str(home)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    wait_until(lambda: pool_running(home) and (pool_status(home) or {}).get("pid") == server.pid, 60)
    return server


@pytest.mark.slow
def test_restart_fails_interrupted_runs_and_picks_up_queued_ones(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    store = RunStore.at_home(home)
    server = _start_server(home, workers=1)
    try:
        (interrupted,) = submit(LONG, home=home, start=False)
        wait_until(lambda: _running_with_steps(store, interrupted), TIMEOUT)
        worker = store.get_run(interrupted).worker_pid
        os.killpg(server.pid, signal.SIGKILL)  # the whole pool dies at once (a crash, a power cut)
        server.wait()
        wait_until(lambda: not _alive(worker), 10)
        assert store.get_run(interrupted).status == "running"  # nobody left to say otherwise
        (queued,) = submit(SMALL, home=home, start=False)
        (fresh,) = submit(SMALL, home=home)  # starts a new pool
        statuses = wait([interrupted, queued, fresh], timeout=TIMEOUT, home=home)
        assert statuses == {interrupted: "failed", queued: "done", fresh: "done"}
        assert store.get_run(interrupted).error.startswith("interrupted")
        assert (store.last_step(interrupted) or 0) > 5

        # stopping a pool interrupts its running run, keeping the metrics
        (stopped,) = submit(LONG, home=home)
        wait_until(lambda: _running_with_steps(store, stopped), TIMEOUT)
        assert stop_pool(home, timeout=20)
        record = store.get_run(stopped)
        assert record.status == "failed" and record.error == "interrupted: the worker pool was stopped"
        assert not pool_running(home)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        assert _stop_all(home) == []


@pytest.mark.slow
def test_heartbeats_fail_a_hung_worker_but_not_a_suspended_machine(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    store = RunStore.at_home(home)
    server = _start_server(home, workers=1)
    try:
        # a suspended laptop: the whole pool stops, then resumes; the run carries on
        (kept,) = submit(LONG, home=home)
        wait_until(lambda: _running_with_steps(store, kept), TIMEOUT)
        os.killpg(server.pid, signal.SIGSTOP)
        time.sleep(9)
        os.killpg(server.pid, signal.SIGCONT)
        step = store.last_step(kept)
        wait_until(lambda: (store.last_step(kept) or 0) > step + 5, 30)
        assert store.get_run(kept).status == "running"
        # a hung worker (alive, no heartbeat): failed within the heartbeat timeout, and replaced
        hung = store.get_run(kept).worker_pid
        os.kill(hung, signal.SIGSTOP)
        seconds = wait_until(lambda: store.get_run(kept).status == "failed", 15, interval=0.1)
        assert seconds < 10
        assert "no heartbeat" in store.get_run(kept).error
        wait_until(lambda: not _alive(hung), 10)
        (after,) = submit(SMALL, home=home)
        assert wait([after], timeout=TIMEOUT, home=home)[after] == "done"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGCONT)
            stop_pool(home, timeout=20)
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        assert _stop_all(home) == []
