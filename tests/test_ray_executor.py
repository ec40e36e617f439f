"""Ray as an executor and as the background pool (:mod:`mtl_core.runs.ray_executor`), on a local Ray of
two CPUs shared by the whole module: the same answers as this process, live metrics, cancel, a killed
Ray worker, a killed bridge, fair share between owners."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed here: pip install -r requirements-ray.txt")

from mtl_core.config import TrainConfig  # noqa: E402
from mtl_core.runs.executors import SerialExecutor, make_executor  # noqa: E402
from mtl_core.runs.ray_executor import RayExecutor, run_bridge  # noqa: E402
from mtl_core.runs.ray_support import connect  # noqa: E402
from mtl_core.runs.store import RunStore, process_alive  # noqa: E402
from mtl_core.runs.workers import ensure_pool, pool_running, stop_pool  # noqa: E402
from mtl_core.studies.study import StudySpec, run_study  # noqa: E402

TINY = TrainConfig(
    suite="planted",
    suite_options={"n_tasks": 3, "n_groups": 2, "n_samples": 60, "dim": 6},
    strategy_options={"hidden": 8, "depth": 1},
    batch_size=32,
    lr=0.01,
    tasks=("t1", "t2"),
    epochs=2,
)
#: Trains for minutes: long enough to be watched, cancelled or killed while it runs.
LONG = TINY.replace(epochs=5000)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    connect(None, num_cpus=2)
    try:
        yield
    finally:
        ray.shutdown()


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def in_background(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def without_timings(value: Any) -> Any:
    """A run record without what the clock decides (seconds taken)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k != "timings" and "seconds" not in k}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def recorded(store: RunStore, run_id: int) -> tuple[Any, ...]:
    metrics = [row for row in store.metrics_after(run_id) if row.key != "epoch_seconds"]
    return without_timings(store.get_result(run_id)), metrics, store.probes_after(run_id)


def test_a_study_on_ray_gives_this_process_s_answers_bit_for_bit(tmp_path: Path) -> None:
    spec = StudySpec(TINY, seeds=(0,), max_epochs=2, tag=True)
    executor = make_executor("ray", tmp_path / "ray")
    assert isinstance(executor, RayExecutor)
    progress: list[tuple[int, int]] = []
    on_ray = run_study(spec, executor, progress=lambda done, total: progress.append((done, total)))
    here = run_study(spec, SerialExecutor(tmp_path / "serial"))
    total = len(on_ray["runs"])
    assert progress[0] == (0, total) and progress[-1] == (total, total)
    assert on_ray["transfer"] == here["transfer"] and on_ray["delta_m"] == here["delta_m"]
    ray_store, serial_store = RunStore.at_home(tmp_path / "ray"), RunStore.at_home(tmp_path / "serial")
    ray_runs = [row["run_id"] for row in on_ray["runs"]]
    serial_runs = [row["run_id"] for row in here["runs"]]
    for ray_run, serial_run in zip(ray_runs, serial_runs, strict=True):
        record = ray_store.get_run(ray_run)
        assert record.status == "done" and record.worker_pid == os.getpid()  # the store is written here
        assert record.info["executor"]["name"] == "ray" and record.info["executor"]["worker_pid"] != os.getpid()
        assert recorded(ray_store, ray_run) == recorded(serial_store, serial_run)  # float for float
    result, metrics, probes = recorded(ray_store, ray_runs[-1])  # the pair: gradient probes and TAG affinity
    assert result["final_metrics"] and metrics and {probe.kind for probe in probes} >= {"cosine", "affinity"}


def test_metrics_arrive_while_it_trains_and_a_cancel_ends_it_within_2_s(tmp_path: Path) -> None:
    store = RunStore.at_home(tmp_path)
    (run_id,) = store.create_runs([LONG.to_dict()])
    trainer = in_background(lambda: RayExecutor(tmp_path).train([run_id]))
    until(lambda: len(store.metrics_after(run_id, key="val_loss")) >= 2, 60, "two epochs recorded")
    assert store.get_run(run_id).status == "running"  # live: rows of a run still training
    seen = store.last_step(run_id)
    until(lambda: (store.last_step(run_id) or 0) > seen, 10, "more steps while it trains")
    store.request_cancel(run_id)
    asked = time.monotonic()
    until(lambda: store.get_run(run_id).status == "cancelled", 2.0, "cancelled within 2 s")
    assert time.monotonic() - asked < 2.0
    trainer.join(10)
    assert not trainer.is_alive()
    assert store.metrics_after(run_id)  # the metrics so far are kept


def test_a_killed_ray_worker_fails_its_run_within_10_s_and_the_other_run_finishes(tmp_path: Path) -> None:
    store = RunStore.at_home(tmp_path)
    doomed, other = store.create_runs([LONG.to_dict(), TINY.replace(epochs=30).to_dict()])
    trainer = in_background(lambda: RayExecutor(tmp_path).train([doomed, other]))
    info = until(lambda: (store.get_run(doomed).info or {}).get("executor"), 60, "the run started on Ray")
    until(lambda: store.metrics_after(doomed), 30, "its first metrics")
    os.kill(info["worker_pid"], signal.SIGKILL)
    killed = time.monotonic()
    until(lambda: store.get_run(doomed).status == "failed", 10, "failed within 10 s")
    assert time.monotonic() - killed < 10
    error = store.get_run(doomed).error
    assert f"Ray worker process {info['worker_pid']}" in error and "died" in error and "\n" not in error
    until(lambda: store.get_run(other).status == "done", 60, "the other run finished")
    trainer.join(10)
    assert not trainer.is_alive()


def test_a_killed_bridge_leaves_nothing_running_once_a_bridge_restarts(tmp_path: Path) -> None:
    home = tmp_path.absolute()
    store = RunStore.at_home(home)
    address = ray.get_runtime_context().gcs_address  # the bridges join this module's Ray
    (stranded,) = store.create_runs([LONG.to_dict()])
    bridge = ensure_pool(home, executor="ray", address=address)
    assert bridge is not None
    until(lambda: pool_running(home), 30, "the bridge holds the pool lock")
    info = until(lambda: (store.get_run(stranded).info or {}).get("executor"), 90, "the bridge started the run")
    assert store.get_run(stranded).worker_pid == bridge  # claimed by the bridge, on this host
    os.kill(bridge, signal.SIGKILL)
    until(lambda: not pool_running(home), 10, "the killed bridge released the pool lock")
    # Ray ends the tasks of a driver that died ...
    until(lambda: not process_alive(info["worker_pid"]), 20, "Ray ended the dead bridge's task")
    (fresh,) = store.create_runs([TINY.to_dict()])
    restarted = ensure_pool(home, executor="ray", address=address, idle_exit=30)
    try:
        assert restarted is not None
        # ... and the next bridge fails the runs of the one that is gone, then serves the queue
        until(lambda: store.get_run(stranded).status == "failed", 60, "the stranded run failed")
        assert store.get_run(stranded).error == f"interrupted: its worker process {bridge} is gone"
        until(lambda: store.get_run(fresh).status == "done", 90, "the restarted bridge trained a run")
        assert store.count_runs("running") == 0
    finally:
        assert stop_pool(home, timeout=20)
    assert not pool_running(home)


def test_the_bridge_shares_ray_fairly_between_owners(tmp_path: Path) -> None:
    store = RunStore.at_home(tmp_path)
    quick = TINY.replace(epochs=1).to_dict()
    first = store.create_runs([quick] * 3, owner="alice")
    second = store.create_runs([quick] * 2, owner="bob")
    stop = threading.Event()
    bridge = in_background(lambda: run_bridge(tmp_path, stop=stop, max_parallel=1))
    try:
        until(lambda: store.count_runs(("done",)) == 5, 90, "the bridge trained the five runs")
    finally:
        stop.set()
        bridge.join(30)
    assert not bridge.is_alive()
    order = [run.id for run in sorted(store.list_runs(), key=lambda run: run.started_at)]
    assert order == [first[0], second[0], first[1], second[1], first[2]]  # turns, not first come
