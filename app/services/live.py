"""A run's time series read while it trains: losses, task weights, per-epoch records and probes
(gradient cosines, TAG affinity), fetched incrementally from the run store for the Run-view page."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from mtl_core.analysis.affinity import run_affinity
from mtl_core.figures import cluster_order
from mtl_core.runs.store import RunStore
from services.catalog import store
from services.runs import RunSummary, step_progress

__all__ = ["COSINE_WINDOWS", "DEFAULT_COSINE_WINDOW", "ProbeWindow", "LiveRun", "live_run", "progress",
           "shared_task_order"]

_Built = TypeVar("_Built")

_EPOCH_KEYS = {"epoch_train_loss": "train_loss", "val_loss": "val_loss", "val_metric": "val_metric"}


#: Choices of the run view's cosine-heatmap window: the number of probes averaged, ending at the
#: chosen probe; 0 = every probe from the run's first. The default is 0 because it is the window that
#: shows the planted groups of ``planted`` on short and long runs alike (benchmarks/cosine_window.py):
#: gradients agree little before the shared features form and are mostly mini-batch noise once the
#: run has converged, so any fixed early or late window misses the blocks on runs of some length.
COSINE_WINDOWS = (0, 25, 10, 5, 1)
DEFAULT_COSINE_WINDOW = 0


@dataclass(frozen=True)
class ProbeWindow:
    """The mean ``matrix`` of the cosine probes taken at ``steps``; ``from_start``: the window begins
    at the run's first probe; ``latest``: it ends at the newest one."""

    matrix: np.ndarray
    steps: tuple[int, ...]
    from_start: bool
    latest: bool
    #: The share of (probe, task pair) cells of the window with a negative cosine (the tasks
    #: conflict), None when no pair has a value: a mean near 0 can hide half the probes in conflict.
    conflict: float | None = None

    @property
    def label(self) -> str:
        """What the window averages, for a title: "mean of all 48 probes (steps 5–240)"."""
        first, last, count = self.steps[0], self.steps[-1], len(self.steps)
        if count == 1:
            return f"probe at step {last}"
        which = "all" if self.from_start else ("the last" if self.latest else "the")
        until = "" if self.latest else f" up to step {last}"
        return f"mean of {which} {count} probes{until} (steps {first}–{last})"


@dataclass
class LiveRun:
    """A run's time series, read incrementally: each :meth:`refresh` asks the store only for the rows
    after the last step already held (one indexed query for metrics, one for probes)."""

    run_id: int
    tasks: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    step_losses: dict[str, list[float]] = field(default_factory=dict)
    weight_steps: list[int] = field(default_factory=list)
    weights: list[list[float]] = field(default_factory=list)
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)
    probes: dict[str, tuple[list[int], list[Any]]] = field(default_factory=dict)
    last_metric_step: int = -1
    last_probe_step: int = -1
    refreshed_at: float = 0.0
    #: Every row is held: the run had ended before the last read, so nothing new can come.
    complete: bool = False
    #: Things built from the series (figures), kept until new rows arrive: see :meth:`memo`.
    built: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: Hashable, build: Callable[[], _Built]) -> _Built:
        """``build()``, or what it returned the last time it was asked for ``key`` if no row has
        arrived since (a finished or waiting run's figures are not rebuilt on every live refresh;
        ``key`` holds every other input, such as the log scale)."""
        if key not in self.built:
            self.built[key] = build()
        return self.built[key]

    def refresh(self, db: RunStore | None = None) -> int:
        """Read what is new; returns the number of new rows."""
        db = db or store()
        metric_rows = db.metrics_after(self.run_id, self.last_metric_step)
        probe_rows = db.probes_after(self.run_id, self.last_probe_step)
        by_step: dict[int, dict[str, float]] = {}
        weight_by_step: dict[int, dict[str, float]] = {}
        for row in metric_rows:
            if row.task is not None and row.task not in self.tasks:
                self.tasks.append(row.task)
            if row.key == "train_loss":
                by_step.setdefault(row.step, {})[row.task] = row.value
            elif row.key == "weight":
                weight_by_step.setdefault(row.step, {})[row.task] = row.value
            elif row.key in _EPOCH_KEYS and row.epoch is not None:
                record = self.epochs.setdefault(
                    row.epoch, {"epoch": row.epoch, "step": row.step, "train_loss": {}, "val_loss": {}, "val_metric": {}}
                )
                record[_EPOCH_KEYS[row.key]][row.task] = row.value
        for step in sorted(by_step):
            values = by_step[step]
            self.steps.append(step)
            for task in self.tasks:
                self.step_losses.setdefault(task, [math.nan] * (len(self.steps) - 1)).append(
                    values.get(task, math.nan)
                )
        for step in sorted(weight_by_step):
            self.weight_steps.append(step)
            self.weights.append([weight_by_step[step].get(task, math.nan) for task in self.tasks])
        for row in probe_rows:
            steps, values = self.probes.setdefault(row.kind, ([], []))
            steps.append(row.step)
            values.append(row.value)
        if metric_rows:
            self.last_metric_step = metric_rows[-1].step
        if probe_rows:
            self.last_probe_step = probe_rows[-1].step
        if metric_rows or probe_rows:
            self.built.clear()
        self.refreshed_at = time.time()
        return len(metric_rows) + len(probe_rows)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch records ``{"epoch", "train_loss", "val_loss", "val_metric"}`` (the trainer's format)."""
        return [self.epochs[e] for e in sorted(self.epochs)]

    @property
    def last_step(self) -> int | None:
        return self.steps[-1] if self.steps else None

    def probe(self, kind: str) -> tuple[list[int], list[Any]]:
        """Steps and values of one probe kind (``cosine``, ``norms``, ``weights``, ``affinity`` …)."""
        steps, values = self.probes.get(kind, ([], []))
        return list(steps), list(values)

    def task_weights(self) -> tuple[list[int], list[list[float]]]:
        """The method's task weights over steps: every step for loss weighting, probe steps otherwise."""
        if self.weights:
            return list(self.weight_steps), [list(w) for w in self.weights]
        return self.probe("weights")

    def best_epoch(self) -> int | None:
        """The epoch with the lowest sum of validation losses so far (the trainer's rule), or None."""
        scores = {}
        for epoch, info in self.epochs.items():
            losses = [v for v in (info.get("val_loss") or {}).values() if isinstance(v, (int, float)) and math.isfinite(v)]
            if losses:
                scores[epoch] = sum(losses)
        return min(scores, key=lambda e: (scores[e], e)) if scores else None

    def affinity_summary(self) -> tuple[np.ndarray, str] | None:
        """The run's TAG affinity as a study reads it (:func:`mtl_core.analysis.affinity.run_affinity`: the median
        of the per-epoch matrices up to the best epoch so far) and a title naming that window; None
        before the first epoch's record."""
        steps, values = self.probe("affinity")
        if not steps:
            return None
        epoch_of = {info.get("step"): epoch for epoch, info in self.epochs.items()}
        records = [(value, {"epoch": epoch_of.get(step)}) for step, value in zip(steps, values, strict=True)]
        best = self.best_epoch()
        size = len(values[0])
        matrix = run_affinity(records, best, size)
        if matrix is None:
            return None
        used = [e for _, extra in records if (e := extra["epoch"]) is not None and (best is None or e <= best)]
        if best is None or not used:
            return matrix, f"median of {len(steps)} epochs"
        # Short enough for a half-width chart's title; the caption says the window ends at the best epoch.
        return matrix, f"median of epochs {min(used)}–{max(used)}"

    def mean_cosine(self) -> np.ndarray | None:
        """The mean of the cosine matrices recorded so far (None before the first)."""
        window = self.cosine_window(0)
        return None if window is None else window.matrix

    def cosine_window(self, window: int = DEFAULT_COSINE_WINDOW, step: int | None = None) -> ProbeWindow | None:
        """The mean of the ``window`` cosine probes (0: every probe from the run's first) that end at
        the probe of ``step`` (None: the newest), or None before the first probe. While the run
        trains, the default window grows with every probe that arrives."""
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0:
            raise ValueError(f"`window` must be a number of probes ≥ 0 (0: all), got {window!r}")
        steps, values = self.probe("cosine")
        if not steps:
            return None
        if step is not None and step not in steps:
            raise ValueError(f"`step` must be a step with a cosine probe ({steps[0]} … {steps[-1]}), got {step!r}")
        end = len(steps) - 1 if step is None else steps.index(step)
        start = 0 if window == 0 else max(0, end + 1 - window)
        stack = np.asarray(values[start:end + 1], dtype=float)  # None (no cosine, e.g. a zero gradient) → NaN
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell with no value in any probe stays NaN
            matrix = np.nanmean(stack, axis=0)
        pairs = stack[:, ~np.eye(stack.shape[1], dtype=bool)] if stack.ndim == 3 else np.empty((0, 0))
        known = pairs[np.isfinite(pairs)]
        conflict = float(np.mean(known < 0)) if known.size else None
        return ProbeWindow(matrix, tuple(steps[start:end + 1]), from_start=start == 0, latest=end == len(steps) - 1,
                           conflict=conflict)


def shared_task_order(runs: Sequence[LiveRun], tasks: Sequence[str]) -> list[int]:
    """One order of ``tasks`` for the cosine heatmaps of ``runs`` (those with these tasks), related
    tasks next to each other so that groups show as blocks instead of a checkerboard: the
    :func:`~mtl_core.figures.cluster_order` of the mean over the runs of their whole-run mean
    cosine. The same order in every panel, so panels compare cell by cell; the given order
    without a probe."""
    matrices = [matrix for live in runs if list(live.tasks) == list(tasks)
                and (matrix := live.mean_cosine()) is not None and matrix.shape == (len(tasks), len(tasks))]
    if not matrices:
        return list(range(len(tasks)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.stack(matrices), axis=0)
    return cluster_order(mean) or list(range(len(tasks)))


def live_run(cache: dict[int, LiveRun], run_id: int, finished: bool = False) -> LiveRun:
    """The cached :class:`LiveRun` of ``run_id`` in ``cache`` (a session-state dict), refreshed.
    ``finished``: the run had ended when its record was read (before this call), so one more read
    gets every row and later calls read nothing."""
    live = cache.get(run_id)
    if live is None:
        live = cache[run_id] = LiveRun(run_id)
    if not live.complete:
        live.refresh()
        live.complete = finished
    return live


def progress(run: RunSummary, live: LiveRun | None) -> float | None:
    """Fraction of the run's steps done (1 when done), None when unknown."""
    return step_progress(run, live.last_step if live is not None else None)
