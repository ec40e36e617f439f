"""A run's events into the run store, off the training thread: :class:`StoreRecorder`, the trainer
callback that a worker of the local pool (:mod:`mtl_core.runs.workers`) and the Ray bridge
(:mod:`mtl_core.runs.ray_executor`) attach to a run, and the back-off of a store write that fails.

Events are buffered and written in batches from a background thread, together with the run's
heartbeat and its cancel poll, so the training loop never waits for SQLite. A failed write (a locked
store, a full disk, a read-only file) is retried with exponential back-off (:data:`WRITE_RETRY_FIRST`
doubling up to :data:`WRITE_RETRY_MAX` seconds) while the rows stay buffered, so nothing is lost once
writes work again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from mtl_core.runs.store import RunStore, StoreError
from mtl_core.training.events import Callback, EpochEvent, ProbeEvent, StepEvent

__all__ = [
    "StoreRecorder",
    "HEARTBEAT_INTERVAL",
    "FLUSH_INTERVAL",
    "CANCEL_POLL_INTERVAL",
    "WRITE_RETRY_FIRST",
    "WRITE_RETRY_MAX",
    "WRITE_GIVE_UP",
]

#: The pool's log: a recorder's warnings are the worker's ("mtl_core.runs.workers" in pool.log, as before).
log = logging.getLogger("mtl_core.runs.workers")

#: A running run's heartbeat in the store (and a pool worker's liveness file), every this many seconds.
HEARTBEAT_INTERVAL = 1.0
#: Buffered rows are written, and the cancel flag read, every this many seconds.
FLUSH_INTERVAL = 0.5
CANCEL_POLL_INTERVAL = 0.5
#: Back-off between retries of a failed store write: the first wait, doubled after each failure up
#: to the cap; a write that keeps failing for :data:`WRITE_GIVE_UP` seconds is given up.
WRITE_RETRY_FIRST = 0.25
WRITE_RETRY_MAX = 8.0
WRITE_GIVE_UP = 600.0


class _Backoff:
    """Waits between retries of a failing write: ``first``, doubled after each failure, at most ``cap``."""

    def __init__(self, first: float = WRITE_RETRY_FIRST, cap: float = WRITE_RETRY_MAX) -> None:
        self.first, self.cap = first, cap
        self.failures = 0

    def failed(self) -> float:
        """Record a failure; returns how long to wait before the next try."""
        delay = min(self.cap, self.first * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return delay

    def succeeded(self) -> None:
        self.failures = 0


def _write_with_retry(store: RunStore, action: Callable[[], Any], what: str, give_up_after: float = WRITE_GIVE_UP) -> Any:
    """``action()``, retried with back-off while the store refuses the write (locked, full, read-only);
    re-raises the :class:`StoreError` once ``give_up_after`` seconds have passed or the store is gone."""
    backoff = _Backoff()
    deadline = time.monotonic() + give_up_after
    while True:
        try:
            return action()
        except StoreError as exc:
            if time.monotonic() >= deadline or not store.path.exists():
                raise
            log.warning("%s: store write failed, retrying with back-off: %s", what, exc)
            time.sleep(backoff.failed())


class StoreRecorder(Callback):
    """A trainer callback that writes a run's events into the store, off the training thread.

    Events are buffered; a background thread (started by :meth:`start` or ``with``) writes them
    every ``flush_interval`` seconds, sends the run's heartbeat and polls its cancel flag. All rows
    of one step are committed together (rows of the newest step wait for the next step or for
    :meth:`close`), so readers that ask for "everything after step k" never miss a row.
    ``should_stop`` turns True after a cancel request or when ``stop_event`` is set.
    """

    def __init__(
        self,
        store: RunStore,
        run_id: int,
        *,
        stop_event: threading.Event | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        cancel_poll_interval: float = CANCEL_POLL_INTERVAL,
        force_stop_after: float | None = None,
        on_force_stop: Callable[[StoreRecorder], None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.cancel_poll_interval = cancel_poll_interval
        self.force_stop_after = force_stop_after
        self.on_force_stop = on_force_stop
        self.stop_reason: str | None = None  # "cancel" or "shutdown"
        self.rows_written = 0
        self._external_stop = stop_event
        self._stop = threading.Event()
        self._stop_since: float | None = None
        self._last_cancel_poll = -float("inf")
        self._metrics: list[tuple[Any, ...]] = []
        self._probes: list[tuple[Any, ...]] = []
        self._newest_step = -1
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._info: dict[str, Any] = {}
        self._backoff = _Backoff()
        self._retry_at = -float("inf")  # no write before this (monotonic) while the store refuses them

    # lifecycle
    def start(self) -> StoreRecorder:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"mtl-recorder-{self.run_id}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the background thread and write everything still buffered (retried with back-off
        while the store refuses writes; raises :class:`StoreError` if it never accepts them)."""
        self._closing.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        _write_with_retry(self.store, lambda: self.flush(final=True), f"run {self.run_id}")

    def __enter__(self) -> StoreRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # trainer events (training thread: append only)
    def on_run_start(self, info: dict[str, Any]) -> None:
        self._info = dict(info)
        try:
            self.store.set_info(self.run_id, info)
        except StoreError as exc:
            log.warning("run %s: could not store its info: %s", self.run_id, exc)

    def on_run_end(self, result: dict[str, Any]) -> None:
        # How the run ended, beside its step budget, so that a run that stopped early (patience)
        # reads as finished at its last epoch rather than as a fraction of ``total_steps``.
        ending = {key: result[key] for key in ("stopped_epoch", "stop_reason", "steps") if key in result}
        try:
            self.store.set_info(self.run_id, {**self._info, **ending})
        except StoreError as exc:
            log.warning("run %s: could not store how it ended: %s", self.run_id, exc)

    def on_step(self, event: StepEvent) -> None:
        rows = [(event.step, event.epoch, task, "train_loss", value) for task, value in event.train_loss.items()]
        if event.weights:
            rows.extend((event.step, event.epoch, task, "weight", value) for task, value in event.weights.items())
        self._add(event.step, rows)

    def on_epoch_end(self, event: EpochEvent) -> None:
        rows: list[tuple[Any, ...]] = []
        for key, values in (("epoch_train_loss", event.train_loss), ("val_loss", event.val_loss),
                            ("val_metric", event.val_metric)):
            rows.extend((event.step, event.epoch, task, key, value) for task, value in values.items())
        rows.append((event.step, event.epoch, None, "epoch_seconds", event.seconds))
        self._add(event.step, rows)

    def on_probe(self, event: ProbeEvent) -> None:
        self._add(event.step, [], [(event.step, event.epoch, event.kind, event.value, dict(event.extra))])

    def should_stop(self) -> bool:
        if self._thread is None:
            self._poll_stop(time.monotonic())
        return self._stop.is_set()

    def _add(self, step: int, metrics: list[tuple[Any, ...]], probes: Sequence[tuple[Any, ...]] = ()) -> None:
        with self._buffer_lock:
            self._metrics.extend(metrics)
            self._probes.extend(probes)
            self._newest_step = max(self._newest_step, step)

    # writing
    def flush(self, final: bool = False) -> int:
        """Write buffered rows (all of them if ``final``, else those before the newest step)."""
        with self._flush_lock:
            with self._buffer_lock:
                if final:
                    metrics, probes = self._metrics, self._probes
                    self._metrics, self._probes = [], []
                else:
                    metrics, self._metrics = _split_before(self._metrics, self._newest_step)
                    probes, self._probes = _split_before(self._probes, self._newest_step)
            written = 0
            try:
                if metrics:
                    written += self.store.append_metric_tuples(self.run_id, metrics)
                    metrics = []
                if probes:
                    written += self.store.append_probes(self.run_id, probes)
            except StoreError:
                with self._buffer_lock:  # keep what was not written, in order, for the next try
                    self._metrics[:0] = metrics
                    self._probes[:0] = probes
                raise
            self.rows_written += written
            return written

    def _request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop_since = time.monotonic()
            self._stop.set()

    def _poll_stop(self, now: float) -> None:
        if self._stop.is_set():
            return
        if self._external_stop is not None and self._external_stop.is_set():
            self._request_stop("shutdown")
        elif now - self._last_cancel_poll >= self.cancel_poll_interval:
            self._last_cancel_poll = now
            if self.store.cancel_requested(self.run_id):
                self._request_stop("cancel")

    def _loop(self) -> None:
        now = time.monotonic()
        next_heartbeat = next_flush = now
        next_poll = now + self.cancel_poll_interval
        while True:
            # Writes wait out the back-off after a failure; the cancel poll (a read) does not.
            due = min(next_poll, max(min(next_heartbeat, next_flush), self._retry_at))
            if self._stop_since is not None and self.force_stop_after is not None:
                due = min(due, self._stop_since + self.force_stop_after)
            # Sleep until something is due (a few wake-ups a second), or until close().
            if self._closing.wait(max(0.0, due - time.monotonic())):
                return
            now = time.monotonic()
            if now >= next_poll:
                try:
                    self._poll_stop(now)
                except StoreError as exc:
                    log.warning("run %s: could not read its cancel flag: %s", self.run_id, exc)
                next_poll = now + self.cancel_poll_interval
            if now >= self._retry_at and now >= min(next_heartbeat, next_flush):
                try:
                    if now >= next_heartbeat:
                        self.store.heartbeat(self.run_id)
                        next_heartbeat = now + self.heartbeat_interval
                    if now >= next_flush:
                        self.flush()
                        next_flush = now + self.flush_interval
                    self._backoff.succeeded()
                except StoreError as exc:  # the rows stay buffered for the next try
                    self._retry_at = time.monotonic() + self._backoff.failed()
                    log.warning("run %s: store write failed, retrying with back-off: %s", self.run_id, exc)
            stuck = self._stop_since is not None and now - self._stop_since >= (self.force_stop_after or float("inf"))
            if stuck and self.on_force_stop is not None:
                self.on_force_stop(self)
                return


def _split_before(rows: list[tuple[Any, ...]], step: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(rows with a step before ``step``, the rest); rows arrive in step order, so scan from the end."""
    cut = len(rows)
    while cut and rows[cut - 1][0] >= step:
        cut -= 1
    return rows[:cut], rows[cut:]
