"""Executing runs: one run from its store record to its end (:func:`execute_run`, with
:func:`train_outcome` and :func:`record_end`, which the Ray executor shares), and the loop of a pool's
worker process (:func:`run_worker`: claim a queued run, train it, beat a liveness file meanwhile).

:mod:`mtl_core.runs.workers` re-exports every public name; the pool's supervisor, which starts and
watches these processes, lives there.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError, MTLError
from mtl_core.runs.recorder import (
    HEARTBEAT_INTERVAL,
    StoreRecorder,
    _Backoff,
    _write_with_retry,
)
from mtl_core.runs.store import (
    RunRecord,
    RunStore,
    StoreError,
    lab_home,
)
from mtl_core.training.events import Callback

# The logger keeps the name it had before this module was split out of workers.
log = logging.getLogger("mtl_core.runs.workers")

#: A run that does not stop this long after a cancel (or pool shutdown) is stopped by ending its worker.
FORCE_STOP_AFTER = 5.0
BEATS_DIR = "beats"
_FORCED_EXIT_CODE = 75


def validate_config(config: TrainConfig | Mapping[str, Any], index: int | None = None) -> TrainConfig:
    """``TrainConfig.from_dict(config).validated()``; with ``index``, the error names ``configs[i]``."""
    try:
        parsed = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        return parsed.validated()
    except ConfigError as exc:
        if index is None:
            raise
        raise ConfigError(f"configs[{index}].{exc.field}", exc.expected, exc.got) from None


# --- running one run ----------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, MTLError):
        return message or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__


_SHUTDOWN_ERROR = "interrupted: the worker pool was stopped"


def train_outcome(
    config: Mapping[str, Any],
    callbacks: Sequence[Callback],
    adjust: Callable[[TrainConfig], TrainConfig] | None = None,
) -> tuple[str, dict[str, Any] | None, str | None, str | None]:
    """Validate ``config`` (then ``adjust`` it, if given) and train it with ``callbacks``: ``(status,
    result, error, traceback)``, the status ``done`` or ``cancelled`` (the trainer stopped on a
    callback's request), or ``failed`` with a one-line error and the traceback for any exception —
    one run's failure is an outcome to record, not an exception (a local worker and a Ray task alike)."""
    try:
        parsed = validate_config(config)
        if adjust is not None:
            parsed = adjust(parsed)
        from mtl_core.training.trainer import train

        result = train(parsed, list(callbacks))
    except Exception as exc:
        return "failed", None, _one_line(exc), traceback.format_exc()
    return ("cancelled" if result.get("status") == "cancelled" else "done"), result, None, None


def execute_run(
    store: RunStore,
    run: RunRecord,
    *,
    stop_event: threading.Event | None = None,
    force_exit: bool = False,
) -> str:
    """Train a run that this process has claimed, recording everything into ``store``; returns
    its final status. Any exception becomes ``failed`` with a one-line error (the traceback is
    stored separately). ``force_exit`` (worker processes only) ends the process if the run ignores
    a cancel for :data:`FORCE_STOP_AFTER` seconds."""
    pid = os.getpid()

    def force_stop(recorder: StoreRecorder) -> None:
        try:
            recorder.flush(final=True)
            if recorder.stop_reason == "cancel":
                store.finish_run(run.id, "cancelled", error=f"stopped by force: it did not stop within "
                                 f"{FORCE_STOP_AFTER:.0f} s of the cancel", pid=pid)
            else:
                store.finish_run(run.id, "failed", error=_SHUTDOWN_ERROR, pid=pid)
            log.error("run %s did not stop in time; ending worker %s", run.id, pid)
        finally:
            os._exit(_FORCED_EXIT_CODE)

    recorder = StoreRecorder(
        store, run.id, stop_event=stop_event,
        force_stop_after=FORCE_STOP_AFTER if force_exit else None,
        on_force_stop=force_stop if force_exit else None,
    )
    recorder.start()
    try:
        status, result, error, trace = train_outcome(run.config, [recorder])
        if status == "failed":
            log.warning("run %s failed: %s", run.id, error)
    finally:
        try:
            recorder.close()
        except StoreError as exc:
            log.error("run %s: could not write its last metrics: %s", run.id, exc)
    if status == "cancelled" and recorder.stop_reason == "shutdown":
        status, error = "failed", _SHUTDOWN_ERROR
    record_end(store, run.id, status, result=result, error=error, trace=trace, pid=pid)
    return status


def record_end(
    store: RunStore,
    run_id: int,
    status: str,
    *,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
    trace: str | None = None,
    pid: int | None = None,
) -> bool:
    """Record how a run that worker ``pid`` (default: this process) trained ended: its record
    (``result``, if any) and its final status, each write retried with back-off while the store refuses
    it. False if the run was no longer this worker's, or the store never accepted the write (the pool
    then marks it failed once the worker is gone)."""
    pid = os.getpid() if pid is None else pid
    try:
        if result is not None:
            _write_with_retry(store, lambda: store.set_result(run_id, result), f"run {run_id}")
        finished = _write_with_retry(
            store, lambda: store.finish_run(run_id, status, error=error, traceback=trace, pid=pid), f"run {run_id}"
        )
        if not finished:
            log.warning("run %s was taken away from worker %s before it finished", run_id, pid)
        return bool(finished)
    except StoreError as exc:  # given up: the pool marks it failed once this worker is gone
        log.error("run %s: could not record its end (%s): %s", run_id, status, exc)
        return False


def limit_threads() -> None:
    """One intra-op torch thread in this process: a worker's parallelism is the pool's processes, and a
    process that trains in the foreground (``lessons run``, ``train``, ``study --executor serial``) on a
    machine that is busy otherwise loses most of its time to torch's threads waiting for each other
    (``lessons run scale-imbalance`` on two cores with a load of 7: 272 s and 97 s of CPU with the
    default threads, 24 s and 5 s with one)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran
        pass


def _preload() -> None:
    """Import the trainer (and torch's lazily imported optimizer machinery) and load the plugins
    before the first run."""
    try:
        import torch._dynamo  # noqa: F401  # first optimizer construction imports it; takes seconds

        from mtl_core.training import trainer  # noqa: F401
    except Exception as exc:  # the first run will fail with the same error and record it
        log.warning("preloading the trainer failed: %s", exc)
    from mtl_core.plugins import load_plugins

    for failure in load_plugins().failed:  # a run that needs it fails with "unknown suite …"
        log.warning("%s", failure.message())


def _beat_path(home: Path, pid: int) -> Path:
    return home / BEATS_DIR / str(pid)


def _start_beating(home: Path, stop: threading.Event) -> threading.Thread:
    """Touch this process's liveness file every :data:`HEARTBEAT_INTERVAL` seconds from a thread of
    its own, so that neither a locked store nor a long step delays it; only a stopped or frozen
    process (or a held GIL) does."""
    path = _beat_path(home, os.getpid())

    def beat() -> None:
        while True:
            try:
                path.touch()
            except OSError:  # no folder yet, or no space for a new file: try again
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError:
                    pass
            if stop.wait(HEARTBEAT_INTERVAL):
                return

    thread = threading.Thread(target=beat, name="mtl-worker-beat", daemon=True)
    thread.start()
    return thread


def run_worker(
    home: str | os.PathLike[str] | None = None,
    *,
    parent_pid: int | None = None,
    idle_exit: float | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """A worker process's loop: claim the oldest queued run, execute it, repeat. Exits when
    ``stop_event`` is set (SIGTERM/SIGINT set it in the main thread), when its parent supervisor
    is gone (after finishing the current run), or after ``idle_exit`` seconds without work."""
    stop = stop_event or threading.Event()
    busy = False

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        if not busy:  # idle (or still importing torch): leave now; a running run stops cleanly instead
            raise SystemExit(0)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    done_beating = threading.Event()
    _start_beating(lab_home(home).absolute(), done_beating)
    limit_threads()
    _preload()
    store = RunStore.at_home(home)
    pid = os.getpid()
    log.info("worker %s ready", pid)
    idle_since = time.monotonic()
    delay = 0.1
    claim_backoff = _Backoff(first=1.0)
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.info("worker %s: its pool supervisor is gone; exiting", pid)
                break
            busy = True  # a signal during the claim only sets the flag: the claim must not be cut short
            try:
                run = store.claim_next(pid)
                claim_backoff.succeeded()
            except StoreError as exc:
                busy = False
                if not store.path.exists():
                    log.error("worker %s: the run store %s is gone; exiting", pid, store.path)
                    break
                log.warning("worker %s: cannot take a run, retrying with back-off: %s", pid, exc)
                stop.wait(claim_backoff.failed())
                continue
            if run is None:
                busy = False
                if idle_exit and time.monotonic() - idle_since > idle_exit:
                    break
                stop.wait(delay)
                delay = min(delay * 1.5, 0.5)
                continue
            log.info("worker %s: run %s started", pid, run.id)
            status = execute_run(store, run, stop_event=stop, force_exit=True)
            log.info("worker %s: run %s %s", pid, run.id, status)
            busy = False
            idle_since = time.monotonic()
            delay = 0.1
    finally:
        done_beating.set()
        store.close()
    return 0
