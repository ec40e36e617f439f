"""Executors: where the runs queued in the run store train. One interface for single runs, studies
and grouping evaluations.

The run store is the queue and the source of truth (status, cancel flag, heartbeats, metrics,
results), so an :class:`Executor` only has to make sure that something claims queued runs and
trains them with :func:`mtl_core.runs.workers.execute_run`:

* :class:`LocalProcessExecutor` (``local``, the default): the background pool of worker processes
  of :mod:`mtl_core.runs.workers`; :meth:`~Executor.start` returns at once;
* :class:`SerialExecutor` (``serial``): this process, one run after the other; :meth:`~Executor.start`
  returns when the runs have finished (headless use, tests, debugging).

* :class:`~mtl_core.runs.ray_executor.RayExecutor` (``ray``, needs ``requirements-ray.txt``): Ray tasks on
  this machine or a cluster, driven from this process (:meth:`~Executor.train`) or, for runs queued
  from the dashboard, from the Ray bridge that replaces the local pool (:meth:`~Executor.start`).

Whatever trains the runs, their outcomes are read back from the store
(:func:`run_outcomes`): a study collected from a pool, from this process or later from the app's
store is the same study.

``$MTL_LAB_EXECUTOR`` names the default executor (:func:`make_executor`).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mtl_core.config import TrainConfig
from mtl_core.errors import MTLError
from mtl_core.registry import Registry
from mtl_core.runs.store import DEFAULT_OWNER, FINISHED_STATUSES, RunNotFoundError, lab_home
from mtl_core.settings import settings

if TYPE_CHECKING:
    from mtl_core.runs.store import RunStore

__all__ = [
    "Executor",
    "LocalProcessExecutor",
    "SerialExecutor",
    "EXECUTORS",
    "make_executor",
    "RunOutcome",
    "ProgressCallback",
    "PROBE_KINDS",
    "run_outcomes",
    "stored_probes",
    "SHUTDOWN_GRACE",
]

#: ``progress(done, total)``: runs finished so far, of all (called once at the start too).
ProgressCallback = Callable[[int, int], None]
#: Probe records an outcome carries (what a study reads back from its runs).
PROBE_KINDS = ("cosine", "affinity")
#: Seconds a stopping pool waits for its runs (see :func:`mtl_core.runs.workers.stop_pool`).
SHUTDOWN_GRACE = 10.0


@dataclass
class RunOutcome:
    """One run as the store holds it: its id, status, error (one line), the run record
    (``trainer.train``'s result; None unless it is ``done``) and its probe records of the
    :data:`PROBE_KINDS` as ``(kind, value, extra)`` with the record's epoch in ``extra["epoch"]``."""

    run_id: int | str
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    probes: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)


def stored_probes(store: RunStore, run_id: int) -> list[tuple[str, Any, dict[str, Any]]]:
    """A stored run's probe records of the :data:`PROBE_KINDS`, as :class:`RunOutcome` holds them."""
    return [(row.kind, row.value, {**row.extra, "epoch": row.epoch})
            for kind in PROBE_KINDS for row in store.probes_after(run_id, kind=kind)]


def run_outcomes(store: RunStore, run_ids: Sequence[int]) -> list[RunOutcome]:
    """The outcomes of ``run_ids`` now, in order: a finished run with its record and probes, an
    unfinished one with its status only (so a study in progress gives a partial analysis), a
    deleted one as ``failed`` with the error ``deleted``."""
    outcomes = []
    for run_id in run_ids:
        try:
            record = store.get_run(run_id)
        except RunNotFoundError:
            outcomes.append(RunOutcome(run_id, "failed", None, "deleted"))
            continue
        if record.status != "done":
            outcomes.append(RunOutcome(run_id, record.status, None, record.error))
            continue
        outcomes.append(RunOutcome(run_id, "done", store.get_result(run_id), None, stored_probes(store, run_id)))
    return outcomes


class Executor(ABC):
    """Trains the runs queued in the run store of ``home``.

    Subclasses implement :meth:`start`. ``poll`` is the seconds between two looks at the store
    while waiting; ``timeout`` (seconds, None = none) bounds a wait.
    """

    name: str = ""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        poll: float = 0.25,
        timeout: float | None = None,
    ) -> None:
        self.home = lab_home(home)
        self.poll = poll
        self.timeout = timeout

    @property
    def store(self) -> RunStore:
        from mtl_core.runs.workers import open_store

        return open_store(self.home)

    @abstractmethod
    def start(self, run_ids: Sequence[int]) -> None:
        """Make sure these queued runs will be trained (a background executor returns at once)."""

    def status(self) -> dict[str, Any] | None:
        """What is running (for display); None when nothing is."""
        return None

    def stop(self, timeout: float = SHUTDOWN_GRACE + 5) -> bool:
        """Stop executing (running runs become ``failed (interrupted)``). True if something stopped."""
        return False

    def train(self, run_ids: Sequence[int], progress: ProgressCallback | None = None) -> None:
        """Train these queued runs and return once all have finished. Interrupting it (Ctrl-C, a
        timeout) cancels the unfinished ones."""
        try:
            self.start(run_ids)
            self.wait(run_ids, progress)
        except BaseException:
            cancel_unfinished(self.store, run_ids)
            raise

    def wait(self, run_ids: Sequence[int], progress: ProgressCallback | None = None) -> None:
        """Return once every run has finished (raises ``TimeoutError`` after ``timeout`` seconds)."""
        store = self.store
        total, done = len(run_ids), -1
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            finished = sum(1 for status in _statuses(store, run_ids) if status in FINISHED_STATUSES)
            if finished != done:
                done = finished
                if progress is not None:
                    progress(done, total)
            if done == total:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{total - done} of {total} runs unfinished after {self.timeout} s")
            time.sleep(self.poll)

    def execute(
        self,
        configs: Sequence[TrainConfig | Mapping[str, Any]],
        *,
        group_id: str | None = None,
        owner: str = DEFAULT_OWNER,
        progress: ProgressCallback | None = None,
    ) -> list[RunOutcome]:
        """Queue ``configs`` as one group, train them and return their outcomes in order."""
        from mtl_core.runs.workers import submit

        ids = submit(list(configs), group_id=group_id, owner=owner, home=self.home, start=False)
        self.train(ids, progress)
        return run_outcomes(self.store, ids)


def _statuses(store: RunStore, run_ids: Sequence[int]) -> list[str]:
    """The status of each run; a deleted run counts as ``failed``."""
    out = []
    for run_id in run_ids:
        try:
            out.append(store.get_run(run_id).status)
        except RunNotFoundError:
            out.append("failed")
    return out


def cancel_unfinished(store: RunStore, run_ids: Sequence[int]) -> None:
    """Cancel the runs that have not finished (a running one stops within about a second)."""
    for run_id in run_ids:
        try:
            if store.get_run(run_id).status not in FINISHED_STATUSES:
                store.request_cancel(run_id)
        except MTLError:
            pass


EXECUTORS: Registry[type[Executor]] = Registry("executor")


@EXECUTORS.register("local")
class LocalProcessExecutor(Executor):
    """A pool of worker processes on this machine, supervised per MTL Lab home
    (:mod:`mtl_core.runs.workers`). ``max_workers`` caps the pool if this executor starts it;
    ``idle_exit`` is the seconds a pool started here waits for work before it exits."""

    name = "local"

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        max_workers: int | None = None,
        idle_exit: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(home, **options)
        self.max_workers = max_workers
        self.idle_exit = idle_exit

    def start(self, run_ids: Sequence[int]) -> None:
        from mtl_core.runs.workers import ensure_pool

        ensure_pool(self.home, max_workers=self.max_workers, idle_exit=self.idle_exit, executor=self.name)

    def status(self) -> dict[str, Any] | None:
        from mtl_core.runs.workers import pool_status

        return pool_status(self.home)

    def stop(self, timeout: float = SHUTDOWN_GRACE + 5) -> bool:
        from mtl_core.runs.workers import stop_pool

        return stop_pool(self.home, timeout=timeout)


@EXECUTORS.register("serial")
class SerialExecutor(Executor):
    """This process trains the runs, one after the other: :meth:`start` returns when they have
    finished. A run that another executor took first (a pool serving the same home) is waited for.
    A run that fails becomes ``failed`` with its message; the others go on."""

    name = "serial"

    def start(self, run_ids: Sequence[int]) -> None:
        self.train(run_ids)

    def train(self, run_ids: Sequence[int], progress: ProgressCallback | None = None) -> None:
        from mtl_core.runs.workers import execute_run

        store = self.store
        total = len(run_ids)
        if progress is not None:
            progress(0, total)
        try:
            for index, run_id in enumerate(run_ids):
                run = store.claim_run(run_id)
                if run is not None:
                    execute_run(store, run)
                if progress is not None:
                    progress(index + 1, total)
        except BaseException:
            for run_id in run_ids:  # the run being trained here stops with this process
                store.finish_run(run_id, "cancelled", error="interrupted")
            cancel_unfinished(store, run_ids)
            raise
        self.wait(run_ids)  # runs another executor took


def make_executor(name: str | None = None, home: str | os.PathLike[str] | None = None, **options: Any) -> Executor:
    """The executor ``name`` (default ``$MTL_LAB_EXECUTOR`` or ``local``) for ``home``, with the
    implementation's ``options`` (e.g. ``max_workers`` of ``local``, ``timeout``)."""
    return EXECUTORS.get(name or settings().executor, "executor")(home, **options)


# Registers ``ray`` (the module imports Ray only when a Ray executor is used).
from mtl_core.runs import ray_executor as _ray_executor  # noqa: E402, F401
