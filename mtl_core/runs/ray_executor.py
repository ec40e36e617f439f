"""Ray as an executor: runs queued in the run store train as Ray tasks, on this machine or a cluster.

The run store stays the single source of truth and is written only here, on the app's host: a
*driver* in this process claims runs from the store, submits each as a Ray task (``num_cpus=1``, and
``num_gpus=1`` for a run on ``cuda``) and writes back everything the task reports through the same
:class:`~mtl_core.runs.workers.StoreRecorder` as a worker of the local pool. The task never opens
the store: it trains with the same code path as a local worker (one torch thread,
:func:`~mtl_core.runs.workers.limit_threads`; the plugins of ``$MTL_LAB_PLUGINS`` loaded) and pushes
its trainer events in batches, about four times a second, to a small mailbox actor of the driver,
which the driver drains and replays into the recorder, so the live run view updates while it trains.

Two drivers:

* :class:`RayExecutor` (``make_executor("ray")``, ``study … --executor ray``): :meth:`~RayExecutor.train`
  drives the runs of a study from this process, at most as many at a time as the cluster has CPUs;
  :meth:`~RayExecutor.start` (what ``submit`` and the dashboard call) starts the bridge instead and
  returns at once;
* :func:`run_bridge` (``worker --executor ray``, or the background pool when ``$MTL_LAB_EXECUTOR=ray``):
  the long-running bridge that serves the queue of an MTL Lab home with the local pool's fair-share
  claim (:meth:`~mtl_core.runs.store.RunStore.claim_next`) and the pool's lock, ``pool.json`` and
  ``pool.log``, so ``worker --status`` / ``--stop`` and the app's pool checks work unchanged.

Faults:

* cancel (page or CLI): the driver sees the run's cancel flag through its recorder (polled every
  0.5 s), asks the task to stop after its current step (it then returns its partial record, as a
  local worker does) and, if it has not stopped :data:`FORCE_CANCEL_AFTER` seconds later, cancels it
  with ``ray.cancel(force=True)``: the run is ``cancelled`` within 2 s either way;
* a Ray worker that dies mid-run (killed, out of memory, its node lost): the run is ``failed`` with a
  one-line error naming the worker and node, as soon as Ray reports it (about a second); it is not
  retried (``max_retries=0``: a retry would train the run again from step 0 on top of the metrics
  already recorded). Other runs carry on;
* the bridge (or a study's driver) killed: Ray ends the tasks it owned, and the runs it had claimed
  name its pid on this host, so the next bridge or pool to start — and any running pool, within a
  second — marks them ``failed`` (interrupted: its worker process is gone). Nothing stays ``running``.

Runs trained on a cluster need ``mtl_core`` importable on every node (``pip install`` of the
project, at the same versions), and a suite saved from "Your data" lives in ``$MTL_LAB_HOME`` of the
app's host: a cluster node that does not share that folder cannot load it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mtl_core.runs.executors import (
    EXECUTORS,
    SHUTDOWN_GRACE,
    Executor,
    ProgressCallback,
    cancel_unfinished,
)
from mtl_core.runs.ray_support import RaySetupError, connect, parse_address, require_ray
from mtl_core.runs.store import HEARTBEAT_TIMEOUT, RunRecord, RunStore, StoreError, lab_home
from mtl_core.settings import settings
from mtl_core.training.events import Callback, EpochEvent, ProbeEvent, StepEvent

if TYPE_CHECKING:
    from mtl_core.runs.workers import StoreRecorder

__all__ = ["RayExecutor", "run_bridge", "FORCE_CANCEL_AFTER", "FORWARD_INTERVAL"]

log = logging.getLogger(__name__)

#: Seconds between two batches of trainer events a Ray task sends to its driver.
FORWARD_INTERVAL = 0.25
#: A run asked to stop (cancel, shutdown) that is still training this long after is cancelled by force.
FORCE_CANCEL_AFTER = 1.0
#: Seconds between two looks of a driver at its mailbox, its runs and the store.
DRIVER_TICK = 0.1
#: Seconds between two tries of a background bridge to reach a cluster that does not answer.
RECONNECT_INTERVAL = 10.0
#: Seconds between two reads of the cluster's size (nodes join and leave).
CAPACITY_REFRESH = 5.0
#: Plugin settings a Ray task needs to build the same model as a local worker.
_FORWARDED_SETTINGS = ("MTL_LAB_PLUGINS",)


# --- the Ray side: a task that trains one run and forwards its events --------------------------------
class _Mailbox:
    """The driver's inbox (a Ray actor with no CPU of its own): tasks put batches of events, the
    driver takes them all at once; the driver marks runs that must stop, and a task's next ``put``
    answers whether it must."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[tuple[str, Any]]]] = []
        self.stopping: set[int] = set()

    def put(self, run_id: int, events: list[tuple[str, Any]]) -> bool:
        if events:
            self.batches.append((run_id, events))
        return run_id in self.stopping

    def take(self) -> list[tuple[int, list[tuple[str, Any]]]]:
        batches, self.batches = self.batches, []
        return batches

    def stop(self, run_id: int) -> None:
        self.stopping.add(run_id)

    def forget(self, run_id: int) -> None:
        self.stopping.discard(run_id)


class _Forwarder(Callback):
    """A trainer callback on the Ray worker: buffers the events, and a thread sends them to the
    mailbox every :data:`FORWARD_INTERVAL` seconds (the last ones when the run ends, before the task
    returns, so the driver has them all once it sees the task finished)."""

    def __init__(self, run_id: int, mailbox: Any, where: Mapping[str, Any]) -> None:
        self.run_id = run_id
        self.mailbox = mailbox
        self.where = dict(where)
        self._events: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"mtl-forward-{run_id}", daemon=True)

    def __enter__(self) -> _Forwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._thread.join()
        self.send()

    def _loop(self) -> None:
        while not self._closing.wait(FORWARD_INTERVAL):
            self.send()

    def send(self) -> None:
        import ray

        with self._send_lock:  # batches leave in order
            with self._lock:
                events, self._events = self._events, []
            if ray.get(self.mailbox.put.remote(self.run_id, events)):
                self._stop.set()

    def _add(self, hook: str, payload: Any) -> None:
        with self._lock:
            self._events.append((hook, payload))

    def on_run_start(self, info: dict[str, Any]) -> None:
        self._add("on_run_start", {**info, "executor": self.where})

    def on_step(self, event: StepEvent) -> None:
        self._add("on_step", event)

    def on_epoch_end(self, event: EpochEvent) -> None:
        self._add("on_epoch_end", event)

    def on_probe(self, event: ProbeEvent) -> None:
        self._add("on_probe", event)

    def on_run_end(self, result: dict[str, Any]) -> None:
        self._add("on_run_end", result)

    def should_stop(self) -> bool:
        return self._stop.is_set()


def _train_task(run_id: int, config: dict[str, Any], mailbox: Any, environ: dict[str, str]) -> dict[str, Any]:
    """The body of a run's Ray task: train ``config`` as a local worker would, forwarding the events.
    Returns ``{"status", "result", "error", "traceback"}`` (a failure of the run is an outcome, not
    an exception: only the death of the worker reaches the driver as one)."""
    import ray

    from mtl_core.plugins import load_plugins
    from mtl_core.runs.workers import limit_threads, train_outcome

    limit_threads()
    load_plugins(environ)
    where = {"name": "ray", "node": ray.util.get_node_ip_address(), "worker_pid": os.getpid()}

    def on_this_worker(parsed: Any) -> Any:  # Ray shows the task only the GPU it was given
        return parsed.replace(device="cuda") if parsed.device.startswith("cuda") else parsed

    with _Forwarder(run_id, mailbox, where) as forwarder:
        status, result, error, trace = train_outcome(config, [forwarder], adjust=on_this_worker)
    return {"status": status, "result": result, "error": error, "traceback": trace}


# --- the driver: claims, submits, relays, finishes -----------------------------------------------------
@dataclass
class _Flight:
    """A run submitted to Ray from this process."""

    run: RunRecord
    ref: Any
    recorder: StoreRecorder
    where: dict[str, Any] = field(default_factory=dict)
    stop_asked: float | None = None  # monotonic time the task was asked to stop
    stop_reason: str | None = None  # "cancel" or "shutdown"


def _death_message(exc: BaseException, where: Mapping[str, Any]) -> str:
    """One line for a run whose Ray worker (or node) died under it."""
    import ray.exceptions as rex

    who = (f"the Ray worker process {where['worker_pid']} on {where['node']}" if where
           else "the Ray worker assigned to it")
    if isinstance(exc, rex.OutOfMemoryError):
        return f"{who} was ended by Ray for lack of memory while training it"
    if isinstance(exc, rex.NodeDiedError):
        return f"the Ray node running it died ({who})"
    if isinstance(exc, (rex.WorkerCrashedError, rex.LocalRayletDiedError, rex.OwnerDiedError)):
        return f"{who} died while training it (killed, or out of memory); its metrics so far are kept"
    text = " ".join(str(exc).split())
    return f"Ray could not train it: {exc.__class__.__name__}: {text[:200]}"


class _RayDriver:
    """Submits claimed runs as Ray tasks and records what they report, from one thread of this
    process (its :meth:`pump` is called every :data:`DRIVER_TICK` seconds)."""

    def __init__(self, store: RunStore, max_parallel: int | None = None) -> None:
        self.ray = require_ray()
        self.store = store
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.max_parallel = max_parallel
        self.flights: dict[int, _Flight] = {}
        self.mailbox = self.ray.remote(num_cpus=0)(_Mailbox).remote()
        self._task = self.ray.remote(_train_task)
        self._environ = {name: os.environ[name] for name in _FORWARDED_SETTINGS if name in os.environ}
        self._capacity = (0, -float("inf"))  # (runs at a time, read at)
        self._gpus = 0.0

    # capacity
    def capacity(self) -> int:
        """Runs to have in flight at once: ``max_parallel``, else the cluster's CPUs (one per run)."""
        if self.max_parallel is not None:
            return self.max_parallel
        count, read_at = self._capacity
        if time.monotonic() - read_at > CAPACITY_REFRESH:
            resources = self.ray.cluster_resources()
            count = max(1, int(resources.get("CPU", 1)))
            self._gpus = float(resources.get("GPU", 0.0))
            self._capacity = (count, time.monotonic())
        return count

    def free_slots(self) -> int:
        return max(0, self.capacity() - len(self.flights))

    # submitting
    def submit(self, run: RunRecord) -> None:
        """Send a run this process has claimed to Ray (a run Ray cannot place fails at once)."""
        from mtl_core.runs.workers import StoreRecorder

        device = str(run.config.get("device", "cpu"))
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": 0, "name": f"mtl-run-{run.id}"}
        if device.startswith("cuda"):
            self.capacity()
            if self._gpus < 1 and self.max_parallel is None:
                self._finish(run.id, "failed", error=f"the run needs a GPU (device {device!r}) but the Ray "
                             "cluster has none: set device to cpu, or add a node with a GPU")
                return
            options["num_gpus"] = 1
        recorder = StoreRecorder(self.store, run.id).start()
        ref = self._task.options(**options).remote(run.id, run.config, self.mailbox, self._environ)
        self.flights[run.id] = _Flight(run, ref, recorder)
        log.info("run %s submitted to Ray", run.id)

    # one look at everything
    def pump(self) -> list[int]:
        """Relay the events that arrived, act on cancel flags and finish the runs whose task ended;
        returns the ids finished now."""
        self._relay()
        now = time.monotonic()
        for flight in list(self.flights.values()):
            if flight.stop_asked is None and flight.recorder.should_stop():
                self._ask_to_stop(flight, flight.recorder.stop_reason or "cancel")
            elif flight.stop_asked is not None and now - flight.stop_asked > FORCE_CANCEL_AFTER:
                self._force_stop(flight)
        finished = []
        if self.flights:
            refs = [flight.ref for flight in self.flights.values()]
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
            if ready:
                self._relay()  # the task sent its last events before it returned
                by_ref = {flight.ref: run_id for run_id, flight in self.flights.items()}
                for ref in ready:
                    run_id = by_ref.get(ref)
                    if run_id is not None and run_id in self.flights:
                        self._collect(self.flights[run_id])
                        finished.append(run_id)
        return finished

    def _relay(self) -> None:
        for run_id, events in self.ray.get(self.mailbox.take.remote()):
            flight = self.flights.get(run_id)
            if flight is None:  # a run finished here already (cancelled by force)
                continue
            for hook, payload in events:
                if hook == "on_run_start":
                    flight.where = dict(payload.get("executor") or {})
                getattr(flight.recorder, hook)(payload)

    def _ask_to_stop(self, flight: _Flight, reason: str) -> None:
        flight.stop_asked, flight.stop_reason = time.monotonic(), reason
        self.mailbox.stop.remote(flight.run.id)

    def _force_stop(self, flight: _Flight) -> None:
        self.ray.cancel(flight.ref, force=True)
        self._relay()
        if flight.stop_reason == "cancel":
            self._end(flight, "cancelled", error=f"stopped by force: it did not stop within {FORCE_CANCEL_AFTER:g} s "
                      "of the cancel")
        else:
            self._end(flight, "failed", error=_shutdown_error())

    def _collect(self, flight: _Flight) -> None:
        """Record the end of a run whose task has ended (returned, failed or was cancelled)."""
        import ray.exceptions as rex

        try:
            outcome = self.ray.get(flight.ref)
        except rex.TaskCancelledError:
            outcome = {"status": "cancelled", "result": None, "error": None, "traceback": None}
        except rex.RayError as exc:
            error = _death_message(exc, flight.where)
            log.warning("run %s failed: %s", flight.run.id, error)
            outcome = {"status": "failed", "result": None, "error": error, "traceback": None}
        status = outcome["status"]
        error = outcome["error"]
        if status == "cancelled" and flight.stop_reason == "shutdown":
            status, error = "failed", _shutdown_error()
        self._end(flight, status, result=outcome["result"], error=error, trace=outcome["traceback"])

    def _end(self, flight: _Flight, status: str, *, result: dict[str, Any] | None = None, error: str | None = None,
             trace: str | None = None) -> None:
        self.flights.pop(flight.run.id, None)
        self.mailbox.forget.remote(flight.run.id)
        try:
            flight.recorder.close()
        except StoreError as exc:
            log.error("run %s: could not write its last metrics: %s", flight.run.id, exc)
        self._finish(flight.run.id, status, result=result, error=error, trace=trace)

    def _finish(self, run_id: int, status: str, *, result: dict[str, Any] | None = None, error: str | None = None,
                trace: str | None = None) -> None:
        from mtl_core.runs.workers import record_end

        record_end(self.store, run_id, status, result=result, error=error, trace=trace, pid=self.pid)
        log.info("run %s %s on Ray", run_id, status)

    def shutdown(self, wait: float = SHUTDOWN_GRACE) -> None:
        """Stop every run in flight (asked first, by force after :data:`FORCE_CANCEL_AFTER` seconds);
        they become ``failed`` (interrupted). Returns once all are recorded."""
        for flight in self.flights.values():
            if flight.stop_asked is None:
                self._ask_to_stop(flight, "shutdown")
        deadline = time.monotonic() + wait
        while self.flights and time.monotonic() < deadline:
            self.pump()
            time.sleep(DRIVER_TICK)
        for flight in list(self.flights.values()):
            self._force_stop(flight)


def _shutdown_error() -> str:
    from mtl_core.runs.workers import _SHUTDOWN_ERROR

    return _SHUTDOWN_ERROR


def _address(address: str | None) -> str | None:
    """The cluster address to use: ``address``, else ``$MTL_LAB_RAY_ADDRESS`` (None: a local Ray)."""
    return parse_address(address if address is not None else settings().ray_address)


# --- the executor -------------------------------------------------------------------------------------
@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs trained as Ray tasks (see the module docstring). ``address``: the cluster (default
    ``$MTL_LAB_RAY_ADDRESS``; none: a local Ray with this machine's cores); ``max_parallel``: runs in
    flight at once (default: the cluster's CPUs)."""

    name = "ray"

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        address: str | None = None,
        max_parallel: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(home, **options)
        self.address = _address(address)
        if max_parallel is not None and (isinstance(max_parallel, bool) or not isinstance(max_parallel, int)
                                         or max_parallel < 1):
            raise RaySetupError(f"`max_parallel` must be a positive integer, got {max_parallel!r}")
        self.max_parallel = max_parallel

    def start(self, run_ids: Sequence[int]) -> None:
        """Make sure the bridge of this home runs (it trains queued runs on Ray); returns at once."""
        from mtl_core.runs.workers import ensure_pool

        ensure_pool(self.home, executor="ray", address=self.address)

    def status(self) -> dict[str, Any] | None:
        from mtl_core.runs.workers import pool_status

        return pool_status(self.home)

    def stop(self, timeout: float = SHUTDOWN_GRACE + 5) -> bool:
        from mtl_core.runs.workers import stop_pool

        return stop_pool(self.home, timeout=timeout)

    def train(self, run_ids: Sequence[int], progress: ProgressCallback | None = None) -> None:
        """Train these queued runs on Ray from this process (the driver) and return once all have
        finished; a run that another executor took first is waited for. Interrupting it (Ctrl-C, a
        timeout) cancels the unfinished ones."""
        connect(self.address)
        store = self.store
        driver = _RayDriver(store, self.max_parallel)
        pending = list(run_ids)
        total, done = len(run_ids), 0
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        if progress is not None:
            progress(0, total)
        try:
            while pending or driver.flights:
                while pending and driver.free_slots():
                    run = store.claim_run(pending.pop(0), pid=driver.pid, host=driver.host)
                    if run is not None:  # else cancelled meanwhile, or another executor's: waited for below
                        driver.submit(run)
                for _ in driver.pump():
                    done += 1
                    if progress is not None:
                        progress(done, total)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{total - done} of {total} runs unfinished after {self.timeout} s")
                time.sleep(DRIVER_TICK)
        except BaseException:
            for flight in list(driver.flights.values()):
                driver._ask_to_stop(flight, "cancel")
                driver._force_stop(flight)
            cancel_unfinished(store, run_ids)
            raise
        self.wait(run_ids, progress)  # runs another executor took


# --- the bridge ---------------------------------------------------------------------------------------
def run_bridge(
    home: str | os.PathLike[str] | None = None,
    address: str | None = None,
    *,
    stop: threading.Event | None = None,
    idle_exit: float | None = None,
    max_parallel: int | None = None,
    retry_connect: bool = False,
) -> int:
    """Serve the queue of ``home`` on Ray until ``stop`` is set (SIGTERM / SIGINT in the main
    thread), or ``idle_exit`` seconds with nothing queued, nothing running and no page open.

    Holds the home's pool lock (one pool or bridge per home; returns
    :data:`~mtl_core.runs.workers.EXIT_ALREADY_RUNNING` if another holds it), first fails the runs
    whose worker or bridge is gone, then claims queued runs with the local pool's fair share (as
    many as the cluster has CPUs, or ``max_parallel``) and trains them as Ray tasks. ``address``:
    the cluster (default ``$MTL_LAB_RAY_ADDRESS``; none: a local Ray). Raises
    :class:`~mtl_core.runs.ray_support.RaySetupError` if Ray cannot be used (a malformed address,
    Ray missing or at another version, the cluster unreachable); nothing queued is touched. With
    ``retry_connect`` (the background pool of the dashboard) an unreachable cluster is retried every
    :data:`RECONNECT_INTERVAL` seconds instead, its message in ``pool.json`` under ``error``."""
    from mtl_core.runs import workers

    home = lab_home(home).absolute()
    home.mkdir(parents=True, exist_ok=True)
    cluster = _address(address)
    ray = require_ray()
    stop = stop or threading.Event()
    lock = workers._PoolLock(home / workers.LOCK_FILE)
    if not lock.acquire(wait=2.0):
        log.info("a worker pool already serves %s", home)
        return workers.EXIT_ALREADY_RUNNING

    def catch_signals() -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())

    catch_signals()
    store = None
    started_ray = not ray.is_initialized()
    try:
        store = RunStore.at_home(home)
        recovered = store.recover_interrupted(stale_after=None)
        if recovered:
            log.info("marked runs %s failed (interrupted: their worker or bridge is gone)", recovered)
        if not _connect(cluster, home, store, lock, stop, idle_exit, retry_connect):
            return 0
        catch_signals()  # Ray's start-up put in handlers of its own
        driver = _RayDriver(store, max_parallel)
        log.info("Ray bridge %s serving %s on %s (%d runs at a time)", driver.pid, home, cluster or "a local Ray",
                 driver.capacity())
        try:
            _serve(driver, store, home, lock, stop, idle_exit, cluster)
        finally:
            driver.shutdown()
            log.info("Ray bridge %s stopped", driver.pid)
    finally:
        workers._remove_info(home)
        lock.release()
        if store is not None:
            store.close()
        if started_ray:
            ray.shutdown()
    return 0


def _connect(cluster: str | None, home: os.PathLike[str], store: RunStore, lock: Any, stop: threading.Event,
             idle_exit: float | None, retry: bool) -> bool:
    """Connect to Ray; with ``retry``, keep trying while the cluster does not answer (and say why
    in ``pool.json``). False if stopped, or idle for ``idle_exit`` seconds, before it answered."""
    from mtl_core.runs import workers

    idle_since = time.monotonic()
    while True:
        try:
            connect(cluster)
            return True
        except RaySetupError as exc:
            if not retry:
                raise
            log.error("%s; trying again every %.0f s", exc, RECONNECT_INTERVAL)
            workers._write_info_file(home, {"pid": os.getpid(), "host": socket.gethostname(), "home": str(home),
                                            "executor": "ray", "address": cluster, "max_workers": 0,
                                            "idle_exit": idle_exit, "workers": [], "running": [], "error": str(exc)})
        if stop.wait(RECONNECT_INTERVAL):
            return False
        idle_since = workers._idle_since(home, idle_since, idle_exit, busy=bool(store.count_runs("queued")))
        if (idle_exit is not None and time.monotonic() - idle_since > idle_exit
                and workers._release_if_idle(lock, store)):
            return False


def _serve(driver: _RayDriver, store: RunStore, home: os.PathLike[str], lock: Any, stop: threading.Event,
           idle_exit: float | None, cluster: str | None) -> None:
    from mtl_core.runs import workers

    idle_since = time.monotonic()
    next_recovery = 0.0
    last_info: dict[str, Any] | None = None
    while not stop.wait(DRIVER_TICK):
        try:
            driver.pump()
            while driver.free_slots():
                run = store.claim_next(driver.pid, host=driver.host)
                if run is None:
                    break
                driver.submit(run)
            if time.monotonic() >= next_recovery:  # runs of other executors that died (not this bridge's)
                for run_id in store.recover_interrupted(stale_after=HEARTBEAT_TIMEOUT, own_workers=[driver.pid]):
                    log.warning("run %s: %s", run_id, store.get_run(run_id).error)
                next_recovery = time.monotonic() + 1.0
            queued = store.count_runs("queued")
        except (StoreError, OSError) as exc:  # a locked store: the runs in flight go on
            log.warning("Ray bridge: %s", exc)
            continue
        info = {"pid": driver.pid, "host": driver.host, "home": str(home), "executor": "ray",
                "address": cluster, "max_workers": driver.capacity(), "idle_exit": idle_exit,
                "workers": [], "running": sorted(driver.flights)}
        if info != last_info:
            workers._write_info_file(home, info)
            last_info = info
        idle_since = workers._idle_since(home, idle_since, idle_exit, busy=bool(queued or driver.flights))
        if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
            if workers._release_if_idle(lock, store):
                log.info("Ray bridge %s idle for %.0f s; exiting", driver.pid, idle_exit)
                return

