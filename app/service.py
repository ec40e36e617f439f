"""The dashboard's one door to the engine: the only module of ``app/`` that imports ``mtl_core``.

Pages call these functions and get plain Python data back (dicts, lists, small dataclasses, pandas
frames) that the figure functions take as they are. Nothing here draws or calls ``st.*``.

Torch: the run store, the worker pool and the config check import no torch, but the registries of
suites, strategies and balancing methods do (their modules define ``torch.nn`` models). They are
imported lazily, only by the functions that need them (:func:`catalog`, :func:`check_configs`,
:func:`queue_runs`), and :func:`warm_up` imports them in a background thread when a session opens, so
that the Runs and Run-view pages never wait for torch.

Run-store connections: SQLite connections belong to one thread, and Streamlit runs each rerun in a
new thread, so :func:`store` keeps one :class:`~mtl_core.store.RunStore` per live thread and closes
those of threads that have ended.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtl_core import workers
from mtl_core.analysis import relative_change, summarize_seeds
from mtl_core.errors import ConfigError, MTLError
from mtl_core.store import (
    FINISHED_STATUSES,
    RunNotFoundError,
    RunRecord,
    RunStateError,
    RunStore,
    StoreError,
    default_store_path,
    lab_home,
    run_duration,
)

__all__ = [
    "live_refresh_seconds",
    "live_refresh_for",
    "live_viewers",
    "MTLError",
    "ConfigError",
    "StoreError",
    "AUTOSTART_ENV",
    "store",
    "store_path",
    "check_store",
    "warm_up",
    "catalog",
    "suite_tasks",
    "ensure_workers",
    "record_render",
    "TIMINGS_ENV",
    "pool_info",
    "TrainForm",
    "build_configs",
    "check_configs",
    "explain",
    "queue_runs",
    "parse_run_id",
    "RunSummary",
    "list_runs",
    "get_run",
    "run_counts",
    "runs_table",
    "cancel_run",
    "delete_run",
    "group_runs",
    "is_study_run",
    "LiveRun",
    "ProbeWindow",
    "COSINE_WINDOWS",
    "DEFAULT_COSINE_WINDOW",
    "live_run",
    "progress",
    "final_metrics",
    "find_baseline",
    "delta_m",
    "queue_baseline",
    "compare_table",
    "aggregate_table",
    "settings_table",
    "run_histories",
    "mean_ci",
    "format_ci",
    "StudyForm",
    "StudyInfo",
    "study_size",
    "study_settings",
    "launch_study",
    "list_studies",
    "get_study",
    "study_result",
    "study_heatmaps",
    "study_protocol",
    "study_protocol_defaults",
    "grouping_sources",
    "best_groupings",
    "predicted_scores",
    "launch_grouping",
    "grouping_result",
]

#: Set to ``0`` to stop the dashboard from starting the worker pool (runs are only queued; a pool
#: started later, e.g. ``python -m mtl_core worker``, picks them up). Tests and benchmarks use it.
AUTOSTART_ENV = "MTL_LAB_APP_AUTOSTART"
#: Seconds between two refreshes of a live run view (default 1). On a small server shared by a whole
#: class, 2-5 s keeps the server responsive: every open live view redraws its charts at this pace.
LIVE_REFRESH_ENV = "MTL_LAB_LIVE_REFRESH"
DEFAULT_LIVE_REFRESH = 1.0


def live_refresh_seconds() -> float:
    """The live view's refresh period: ``$MTL_LAB_LIVE_REFRESH`` clamped to [0.5, 60] s; the default
    (1 s) when unset or not a number (the server log says so once)."""
    text = os.environ.get(LIVE_REFRESH_ENV, "").strip()
    if not text:
        return DEFAULT_LIVE_REFRESH
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        if text not in _refresh_warned:
            _refresh_warned.add(text)
            logging.getLogger(__name__).warning(
                "%s must be a number of seconds, got %r; using %g", LIVE_REFRESH_ENV, text, DEFAULT_LIVE_REFRESH)
        return DEFAULT_LIVE_REFRESH
    return min(60.0, max(0.5, value))


_refresh_warned: set[str] = set()

#: Server seconds one live-view refresh may cost on average (incremental read + two figures: about
#: 0.12 s measured, more for side-by-side groups). The refresh period grows with the number of live
#: viewers so that all of them together cost at most about one refresh at a time: the Streamlit server
#: is one Python process, and a class of 40 watching live runs at 1 s each would swamp it.
LIVE_SECONDS_PER_VIEWER = 0.15
_LIVE_VIEWER_TTL = 15.0
_live_viewers: dict[str, float] = {}
_live_viewers_lock = threading.Lock()


def live_viewers(viewer: str | None = None) -> int:
    """How many sessions watched a live run in the last 15 s (noting ``viewer`` as one now)."""
    now = time.monotonic()
    with _live_viewers_lock:
        if viewer is not None:
            _live_viewers[viewer] = now
        for key in [k for k, seen in _live_viewers.items() if now - seen > _LIVE_VIEWER_TTL]:
            del _live_viewers[key]
        return len(_live_viewers)


def live_refresh_for(viewer: str) -> float:
    """The refresh period of ``viewer``'s live view: ``$MTL_LAB_LIVE_REFRESH`` (default 1 s), stretched
    to ``LIVE_SECONDS_PER_VIEWER`` × the number of live viewers when more sessions watch at once
    (40 viewers: 6 s), so a class on one small server stays responsive."""
    return round(max(live_refresh_seconds(), LIVE_SECONDS_PER_VIEWER * live_viewers(viewer)), 1)


# --- the run store -----------------------------------------------------------------------------------
_stores: dict[threading.Thread, RunStore] = {}
_stores_lock = threading.Lock()


def store_path() -> Path:
    """The run store file of the current ``$MTL_LAB_HOME``."""
    return default_store_path().absolute()


def store() -> RunStore:
    """The run store of ``$MTL_LAB_HOME`` for the calling thread (raises :class:`StoreError` when the
    file is not a usable run store)."""
    path = store_path()
    thread = threading.current_thread()
    with _stores_lock:
        for other in [t for t in _stores if not t.is_alive()]:
            _stores.pop(other).close()
        current = _stores.get(thread)
        if current is not None and current.path == path:
            return current
        if current is not None:
            current.close()
        current = _stores[thread] = RunStore(path)
        return current


def check_store() -> str | None:
    """None when the run store opens, else the reason it does not (one line, for the page)."""
    try:
        store()
    except StoreError as exc:
        return str(exc)
    return None


# --- catalogue of suites, strategies and methods (imports torch, once) ------------------------------
_catalog: dict[str, dict[str, dict[str, Any]]] | None = None
_catalog_lock = threading.Lock()
_catalog_suites_stamp: tuple[str, int | None] | None = None  # the user-suites folder the catalogue saw


def catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """``{"suites": {name: describe()}, "strategies": {...}, "methods": {...}}`` of every registered
    entry, computed once per process. The first call imports the registries (and torch).

    The suites entry follows the user suites (CSV imports in ``$MTL_LAB_HOME/suites``): whenever that
    folder changed (one ``stat`` per call), the user suites are scanned again and the suites described
    anew, so a suite saved by the Your-data page or by ``suites add-csv`` shows up at once."""
    global _catalog, _catalog_suites_stamp
    with _catalog_lock:
        stamp = _user_suites_stamp()
        if _catalog is None:
            from mtl_core.balancing import METHODS
            from mtl_core.strategies import STRATEGIES

            _catalog = {
                "suites": _described_suites(),
                "strategies": {name: cls.describe() for name, cls in sorted(STRATEGIES.items())},
                "methods": {name: cls.describe() for name, cls in sorted(METHODS.items())},
            }
        elif stamp != _catalog_suites_stamp:
            _catalog = {**_catalog, "suites": _described_suites()}
        _catalog_suites_stamp = stamp
        return _catalog


def warm_up() -> None:
    """Build the catalogue in a background thread (the torch import takes seconds)."""
    if _catalog is None:
        threading.Thread(target=catalog, name="mtl-app-warm-up", daemon=True).start()


def suite_tasks(suite: str, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The task specs a suite offers with ``options`` (raises :class:`ConfigError` for bad options)."""
    catalog()
    from mtl_core.suites import SUITES

    return [spec.to_dict() for spec in SUITES.get(suite, "suite")(**dict(options or {})).task_specs()]


# --- the worker pool ---------------------------------------------------------------------------------
def _autostart() -> bool:
    return os.environ.get(AUTOSTART_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_workers(always: bool = False) -> bool:
    """Start the worker pool unless one runs: always when ``always`` (a session opens), otherwise only
    when runs wait in the queue. Returns True if a pool was started. Does nothing when disabled by
    ``$MTL_LAB_APP_AUTOSTART=0``."""
    if not _autostart():
        return False
    home = lab_home()
    if workers.pool_running(home):
        return False
    if not always and store().count_runs("queued") == 0:
        return False
    return workers.ensure_pool(home) is not None


#: Set to a file path to append one JSON line per page render (page, seconds of the script run):
#: what ``benchmarks/app_render.py`` reads. Off by default.
TIMINGS_ENV = "MTL_LAB_APP_TIMINGS"


def record_render(page: str, seconds: float) -> None:
    """Note how long a page's script took (only when ``$MTL_LAB_APP_TIMINGS`` names a file)."""
    target = os.environ.get(TIMINGS_ENV)
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"page": page, "seconds": round(seconds, 4), "at": time.time()}) + "\n")
    except OSError:
        pass


def pool_info() -> dict[str, Any] | None:
    """The running pool (pid, workers with their runs), or None."""
    return workers.pool_status(lab_home())


# --- building and queueing runs ----------------------------------------------------------------------
@dataclass
class TrainForm:
    """What the Train page collects. One run per (method, seed); seeds are 0 … ``seeds`` − 1."""

    suite: str
    tasks: list[str]
    strategy: str
    methods: list[str]
    suite_options: dict[str, Any] = field(default_factory=dict)
    strategy_options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int = 10
    #: The Train page's defaults: with lr 3e-3 and batch 32 a default 10-epoch run on ``planted``
    #: shows the planted blocks in its whole-run gradient cosine (10 of 10 seeds against 4 of 10
    #: with lr 1e-3 and batch 64; benchmarks/cosine_window.py).
    lr: float = 3e-3
    batch_size: int = 32
    seeds: int = 1
    probe_interval: int = 5
    tag: bool = False


def build_configs(form: TrainForm) -> list[dict[str, Any]]:
    """The run configs (dicts for :meth:`TrainConfig.from_dict`) of a Train-page form, not yet checked.

    Raises :class:`ConfigError` for what the engine cannot express: no task or no method chosen.
    """
    if not form.tasks:
        raise ConfigError("tasks", "at least one task", [])
    if not form.methods:
        raise ConfigError("method", "at least one balancing method", [])
    if isinstance(form.seeds, bool) or not isinstance(form.seeds, int) or not 1 <= form.seeds <= 20:
        raise ConfigError("seeds", "a number of seeds in [1, 20]", form.seeds)
    configs = []
    for method in form.methods:
        for seed in range(form.seeds):
            configs.append({
                "suite": form.suite,
                "tasks": list(form.tasks),
                "suite_options": dict(form.suite_options),
                "strategy": form.strategy,
                "strategy_options": dict(form.strategy_options),
                "method": method,
                "method_options": dict(form.method_options.get(method, {})),
                "epochs": form.epochs,
                "lr": form.lr,
                "batch_size": form.batch_size,
                "seed": seed,
                "probe_interval": form.probe_interval,
                "tag": form.tag,
            })
    return configs


def check_configs(configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate every config (options resolved, defaults filled in); raises the first
    :class:`ConfigError` (its field names the setting, without a ``configs[i]`` prefix)."""
    catalog()
    out = []
    for config in configs:
        out.append(workers.validate_config(config).to_dict())
    return out


_FIELD_LABELS = {
    "suite": "Task suite",
    "tasks": "Tasks",
    "suite_options": "Suite option",
    "strategy": "Sharing strategy",
    "strategy_options": "Strategy option",
    "method": "Balancing method",
    "method_options": "Method option",
    "epochs": "Epochs",
    "patience": "Patience",
    "max_epochs": "Max epochs",
    "lr": "Learning rate",
    "batch_size": "Batch size",
    "seed": "Seed",
    "seeds": "Seeds",
    "probe_interval": "Probe interval",
    "tag": "TAG affinity",
}


def explain(exc: Exception) -> str:
    """A one-line, plain-language version of an engine error for the page (no traceback)."""
    if isinstance(exc, ConfigError):
        field_name = exc.field.split("].", 1)[-1] if exc.field.startswith("configs[") else exc.field
        head, _, option = field_name.partition(".")
        label = _FIELD_LABELS.get(head, head)
        if option:
            label = f"{label} `{option}`"
        return f"{label} must be {exc.expected} (got {exc.got!r})."
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def queue_runs(
    configs: Sequence[Mapping[str, Any]],
    *,
    group_id: str | None = None,
    names: Sequence[str | None] | None = None,
    owner: str | None = None,
) -> list[int]:
    """Validate and queue runs (all or none) for ``owner`` (the session's id), after checking the
    presenter limits (:class:`LimitError`); start the pool if allowed; returns the run ids."""
    from mtl_core.store import DEFAULT_OWNER

    catalog()
    configs = list(configs)
    enforce_limits(configs, owner)
    group_id = group_id or f"ui-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    return workers.submit(configs, names=names, group_id=group_id, owner=owner or DEFAULT_OWNER, home=lab_home(),
                          start=_autostart())


# --- runs ------------------------------------------------------------------------------------------------
def parse_run_id(text: Any) -> int:
    """A run id from a URL parameter or widget; raises ``ValueError`` with a message for the page."""
    if isinstance(text, (list, tuple)):
        text = text[0] if text else ""
    value = str(text).strip().lstrip("#")
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"`run` in the address must be a run number such as 3, got {str(text)!r}")
    return int(value)


@dataclass
class RunSummary:
    """What the pages show about one run."""

    id: int
    name: str | None
    status: str
    suite: str
    strategy: str
    method: str
    seed: int
    tasks: list[str] | None
    epochs: int
    group_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    cancel_requested: bool
    total_steps: int | None
    config: dict[str, Any]
    task_specs: list[dict[str, Any]] | None
    #: The last epoch trained and why it was the last (``patience``, ``max_epochs``, ``cancelled``),
    #: once the run has ended (None before, and for runs recorded before early stopping existed).
    stopped_epoch: int | None = None
    stop_reason: str | None = None

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason == "patience"

    @property
    def label(self) -> str:
        return f"#{self.id} {self.suite} · {self.strategy} · {self.method} · seed {self.seed}"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self) -> float | None:
        return run_duration(self.started_at, self.finished_at)


def _summary(record: RunRecord) -> RunSummary:
    config = record.config or {}
    info = record.info or {}
    specs = info.get("tasks")
    tasks = [t["name"] for t in specs] if specs else config.get("tasks")
    return RunSummary(
        id=record.id,
        name=record.name,
        status=record.status,
        suite=str(record.suite or config.get("suite", "?")),
        strategy=str(record.strategy or config.get("strategy", "?")),
        method=str(record.method or config.get("method", "?")),
        seed=int(config.get("seed", 0) or 0),
        tasks=list(tasks) if tasks else None,
        epochs=int(config.get("epochs", 0) or 0),
        group_id=record.group_id,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        error=record.error,
        cancel_requested=record.cancel_requested,
        total_steps=info.get("total_steps"),
        config=config,
        task_specs=list(specs) if specs else None,
        stopped_epoch=info.get("stopped_epoch"),
        stop_reason=info.get("stop_reason"),
    )


def list_runs(
    status: str | Sequence[str] | None = None,
    suite: str | None = None,
    method: str | None = None,
    strategy: str | None = None,
    group_id: str | None = None,
    limit: int | None = None,
) -> list[RunSummary]:
    """Runs of the store, newest first."""
    records = store().list_runs(status=status, suite=suite, method=method, strategy=strategy, group_id=group_id,
                                limit=limit)
    return [_summary(r) for r in records]


def run_counts() -> dict[str, int]:
    """How many runs are running, queued, and stored in all."""
    db = store()
    return {"running": db.count_runs("running"), "queued": db.count_runs("queued"), "total": db.count_runs()}


def get_run(run_id: int) -> RunSummary | None:
    """One run, or None if it does not exist."""
    try:
        return _summary(store().get_run(run_id))
    except RunNotFoundError:
        return None


def group_runs(run: RunSummary) -> list[RunSummary]:
    """The runs queued together with ``run`` (the same Start click), oldest first, itself included."""
    if not run.group_id:
        return [run]
    return sorted(list_runs(group_id=run.group_id), key=lambda r: r.id)


def is_study_run(run: RunSummary) -> bool:
    """Whether the run belongs to a transfer study or a grouping evaluation."""
    return bool(run.group_id) and run.group_id.startswith(("study-", "grouping-"))


def _progress(run: RunSummary, last_step: int | None) -> float | None:
    # ``total_steps`` is a budget: a run that stops early (patience) is done at 100 % all the same.
    if run.status == "done":
        return 1.0
    if not run.total_steps or last_step is None:
        return 0.0 if run.status in ("queued", "running") else None
    return min(1.0, last_step / run.total_steps)


def runs_table(runs: Sequence[RunSummary]) -> pd.DataFrame:
    """One row per run for the Runs page (progress read only for running runs)."""
    rows = []
    db = store()
    for run in runs:
        last = db.last_step(run.id) if run.status == "running" else None
        progress = _progress(run, last)
        rows.append({
            "id": run.id,
            "open": f"/run?run={run.id}",
            "status": run.status,
            "progress": None if progress is None else round(100 * progress),
            "suite": run.suite,
            "strategy": run.strategy,
            "method": run.method,
            "seed": run.seed,
            "tasks": ", ".join(run.tasks) if run.tasks else "all",
            "epochs": run.epochs,
            "created": pd.Timestamp(run.created_at, unit="s").tz_localize("UTC").tz_convert(None).floor("s"),
            "seconds": None if run.duration is None else round(run.duration, 1),
            "error": run.error or "",
            "group": run.group_id or "",
        })
    columns = ["id", "open", "status", "progress", "suite", "strategy", "method", "seed", "tasks", "epochs",
               "created", "seconds", "error", "group"]
    return pd.DataFrame(rows, columns=columns)


def cancel_run(run_id: int) -> str:
    """Cancel a queued or running run; returns a sentence for the page."""
    try:
        outcome = store().request_cancel(run_id)
    except (RunStateError, RunNotFoundError) as exc:
        return str(exc)
    if outcome == "cancelled":
        return f"Run {run_id} was cancelled before it started."
    return f"Run {run_id} will stop within a second or two (its metrics so far are kept)."


def delete_run(run_id: int) -> str | None:
    """Delete a finished or queued run; None on success, else why not."""
    try:
        store().delete_run(run_id)
    except (RunStateError, RunNotFoundError) as exc:
        return str(exc)
    return None


# --- live reading of one run ---------------------------------------------------------------------------
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
        from mtl_core.analysis.affinity import run_affinity

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
        return ProbeWindow(matrix, tuple(steps[start:end + 1]), from_start=start == 0, latest=end == len(steps) - 1)


def live_run(cache: dict[int, LiveRun], run_id: int) -> LiveRun:
    """The cached :class:`LiveRun` of ``run_id`` in ``cache`` (a session-state dict), refreshed."""
    live = cache.get(run_id)
    if live is None:
        live = cache[run_id] = LiveRun(run_id)
    live.refresh()
    return live


def progress(run: RunSummary, live: LiveRun | None) -> float | None:
    """Fraction of the run's steps done (1 when done), None when unknown."""
    return _progress(run, live.last_step if live is not None else None)


# --- results, baselines and Δm ---------------------------------------------------------------------------
_results: dict[tuple[str, int], dict[str, Any]] = {}
_RESULTS_KEPT = 512


def _result(run_id: int) -> dict[str, Any] | None:
    """A run's stored result. Results are written once, when the run ends, and run ids are never
    reused, so they are kept in memory (the newest few hundred) instead of parsed again."""
    key = (str(store_path()), int(run_id))
    if key in _results:
        return _results[key]
    result = store().get_result(run_id)
    if result is not None:
        if len(_results) >= _RESULTS_KEPT:
            _results.pop(next(iter(_results)))
        _results[key] = result
    return result


def final_metrics(run_id: int) -> dict[str, dict[str, Any]] | None:
    """Test metrics of a finished run: task → {metric, value, loss, higher_is_better}; None if none."""
    result = _result(run_id)
    if not result:
        return None
    return dict(result.get("final_metrics") or {}) or None


def _baseline_key(run: RunSummary) -> tuple[Any, ...]:
    config = run.config
    return (
        run.suite,
        json.dumps(config.get("suite_options") or {}, sort_keys=True),
        tuple(run.tasks or config.get("tasks") or ()),
        run.seed,
    )


def find_baseline(run: RunSummary, candidates: Sequence[RunSummary] | None = None) -> RunSummary | None:
    """A finished single-task run (strategy ``single``) on the same suite, suite options, tasks and
    seed, preferring one with the same epochs, patience, learning rate and batch size; None if there is none."""
    if run.strategy == "single":
        return None
    pool = candidates if candidates is not None else list_runs(status="done", suite=run.suite, strategy="single")
    key = _baseline_key(run)
    matches = [c for c in pool if c.status == "done" and c.strategy == "single" and _baseline_key(c) == key]
    if not matches:
        return None

    def budget(candidate: RunSummary) -> int:
        same = [candidate.config.get(k) == run.config.get(k) for k in ("epochs", "patience", "lr", "batch_size")]
        return -sum(same)

    return sorted(matches, key=lambda c: (budget(c), -c.id))[0]


def delta_m(metrics: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Δm % of one run (Maninis et al. 2019, :func:`mtl_core.analysis.relative_change`): the mean over
    tasks of the signed relative change of the test metric against the single-task baseline —
    **positive = better than single-task**. Tasks without a usable baseline value are left out;
    None when no task can be compared."""
    terms = []
    for task, entry in metrics.items():
        base = baseline.get(task)
        if base is None or entry.get("value") is None or base.get("value") is None:
            continue
        change = float(relative_change(entry["value"], base["value"], bool(entry.get("higher_is_better"))))
        if math.isfinite(change):
            terms.append(change)
    if not terms:
        return None
    return 100.0 * float(np.mean(terms))


def queue_baseline(run: RunSummary, owner: str | None = None) -> list[int]:
    """Queue the single-task baseline of ``run`` (same suite, options, tasks, seed and budget)."""
    config = dict(run.config)
    width = {k: v for k, v in (config.get("strategy_options") or {}).items() if k in ("hidden", "depth")}
    config.update({"strategy": "single", "strategy_options": width, "method": "ew", "method_options": {},
                   "tag": False, "name": None})
    if run.tasks:
        config["tasks"] = list(run.tasks)
    return queue_runs([config], group_id=f"baseline-of-{run.id}", owner=owner)


# --- comparing runs ---------------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean and Student-t confidence interval over seeds (:func:`mtl_core.analysis.summarize_seeds`);
    no interval (None) for fewer than two values."""
    summary = summarize_seeds([math.nan if v is None else float(v) for v in values], confidence)
    if not math.isfinite(summary.ci_low) or not math.isfinite(summary.ci_high):
        return summary.mean, None, None
    return summary.mean, summary.ci_low, summary.ci_high


def format_ci(mean: float, low: float | None, high: float | None, signed: bool = False) -> str:
    """``"0.512 ± 0.031"`` (or just the mean without an interval; "—" for no value)."""
    if mean is None or not math.isfinite(mean):
        return "—"
    text = f"{mean:+.4g}" if signed else f"{mean:.4g}"
    if low is None or high is None or not math.isfinite(low) or not math.isfinite(high):
        return text
    return f"{text} ± {(high - low) / 2:.2g}"


def _signature(run: RunSummary) -> str:
    config = {k: v for k, v in run.config.items() if k not in ("seed", "name")}
    return json.dumps(config, sort_keys=True, default=str)


def _settings(runs: Sequence[RunSummary]) -> dict[int, str]:
    """Run id → setting label: runs that differ only by seed share one. The label is
    ``suite · strategy · method``, with a short tag when other settings differ (tasks, epochs …)."""
    import hashlib

    signatures = {run.id: _signature(run) for run in runs}
    base = {run.id: f"{run.suite} · {run.strategy} · {run.method}" for run in runs}
    variants: dict[str, set[str]] = {}
    for run in runs:
        variants.setdefault(base[run.id], set()).add(signatures[run.id])
    labels = {}
    for run in runs:
        label = base[run.id]
        if len(variants[label]) > 1:
            label += f" [{hashlib.sha1(signatures[run.id].encode()).hexdigest()[:4]}]"
        labels[run.id] = label
    return labels


def compare_table(runs: Sequence[RunSummary]) -> pd.DataFrame:
    """One row per (run, task): the test metric, the task's relative change against the single-task
    baseline of the same seed (``delta``, %, positive = better) and the run's Δm % (NaN without one)."""
    baselines = list_runs(status="done", strategy="single")
    settings = _settings(runs)
    rows = []
    for run in runs:
        metrics = final_metrics(run.id)
        if not metrics:
            continue
        baseline = find_baseline(run, baselines)
        base_metrics = final_metrics(baseline.id) if baseline is not None else None
        dm = delta_m(metrics, base_metrics) if base_metrics else None
        for task, entry in metrics.items():
            one = delta_m({task: entry}, base_metrics) if base_metrics else None
            rows.append({
                "setting": settings[run.id],
                "run": run.label,
                "run_id": run.id,
                "seed": run.seed,
                "task": task,
                "metric": entry.get("metric"),
                "higher_is_better": bool(entry.get("higher_is_better")),
                "value": entry.get("value"),
                "delta": math.nan if one is None else one,
                "delta_m": math.nan if dm is None else dm,
                "baseline_run": None if baseline is None else baseline.id,
            })
    columns = ["setting", "run", "run_id", "seed", "task", "metric", "higher_is_better", "value", "delta",
               "delta_m", "baseline_run"]
    return pd.DataFrame(rows, columns=columns)


def aggregate_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, task): mean ± 95 % CI over seeds of the test metric and of its change against
    single-task (``delta``, %)."""
    rows = []
    for (setting, task), part in table.groupby(["setting", "task"], sort=False):
        mean, low, high = mean_ci(part["value"].tolist())
        delta, delta_low, delta_high = mean_ci(part["delta"].dropna().tolist())
        rows.append({
            "setting": setting, "task": task, "metric": part["metric"].iloc[0],
            "higher_is_better": bool(part["higher_is_better"].iloc[0]), "seeds": int(part["seed"].nunique()),
            "mean": mean, "ci_low": low, "ci_high": high,
            "delta": delta, "delta_ci_low": delta_low, "delta_ci_high": delta_high,
        })
    columns = ["setting", "task", "metric", "higher_is_better", "seeds", "mean", "ci_low", "ci_high", "delta",
               "delta_ci_low", "delta_ci_high"]
    return pd.DataFrame(rows, columns=columns)


def settings_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting: the number of seeds and Δm % (mean ± 95 % CI over the seeds that have a baseline)."""
    rows = []
    for setting, part in table.groupby("setting", sort=False):
        per_run = part.drop_duplicates("run_id")
        mean, low, high = mean_ci(per_run["delta_m"].dropna().tolist())
        rows.append({"setting": setting, "runs": len(per_run), "seeds": int(per_run["seed"].nunique()),
                     "delta_m": mean, "delta_m_ci_low": low, "delta_m_ci_high": high})
    return pd.DataFrame(rows, columns=["setting", "runs", "seeds", "delta_m", "delta_m_ci_low", "delta_m_ci_high"])


def run_histories(runs: Iterable[RunSummary]) -> dict[str, list[dict[str, Any]]]:
    """Per-epoch history of each run (label → records), from the stored result or, for a run still
    going, from its metric rows."""
    out = {}
    for run in runs:
        result = _result(run.id)
        if result and result.get("history"):
            out[run.label] = list(result["history"])
        else:
            live = LiveRun(run.id)
            live.refresh()
            out[run.label] = live.history
    return out


# --- transfer studies and groupings -----------------------------------------------------------------------
# A study is a group of runs in the store (``group_id`` = the study's id) plus a small manifest,
# ``$MTL_LAB_HOME/studies/<id>.json``, holding its spec and run ids in plan order, from which
# :func:`mtl_core.study.collect_study` rebuilds the analysis at any time (partially while it runs).
# A grouping evaluation is the same: its runs, and a manifest naming its study, groups and source.
STUDY_RUN_WARNING = 60


def _studies_dir() -> Path:
    return lab_home() / "studies"


def _write_manifest(group_id: str, manifest: Mapping[str, Any]) -> None:
    folder = _studies_dir()
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{group_id}.json.tmp"
    temporary.write_text(json.dumps(dict(manifest), indent=2, default=str), encoding="utf-8")
    os.replace(temporary, folder / f"{group_id}.json")


def _read_manifest(group_id: str) -> dict[str, Any] | None:
    if not group_id or "/" in group_id or group_id.startswith("."):
        return None
    try:
        return json.loads((_studies_dir() / f"{group_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class _Submitter:
    """A study executor that only queues the runs (the worker pool trains them) and remembers their
    ids; the outcomes it returns are placeholders, discarded by the caller."""

    name = "submit"

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner
        self.ids: list[int] = []

    def execute(self, configs: Sequence[Any], *, group_id: str, progress: Any = None) -> list[Any]:
        from mtl_core.study import RunOutcome

        self.ids = queue_runs([c.to_dict() for c in configs], group_id=group_id, owner=self.owner)
        return [RunOutcome(run_id, "queued") for run_id in self.ids]


class _StoredOutcomes:
    """A study executor that trains nothing: it reads the outcomes of runs already in the store
    (unfinished runs count as missing, so a study in progress gives a partial analysis)."""

    name = "stored"

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = list(ids)

    def execute(self, configs: Sequence[Any], *, group_id: str, progress: Any = None) -> list[Any]:
        from mtl_core.study import RunOutcome, stored_probes

        if len(configs) != len(self.ids):
            raise MTLError(f"study {group_id}: its manifest lists {len(self.ids)} runs, the plan has {len(configs)}")
        db = store()
        outcomes = []
        for run_id in self.ids:
            try:
                record = db.get_run(run_id)
            except RunNotFoundError:
                outcomes.append(RunOutcome(run_id, "failed", None, "deleted"))
                continue
            if record.status != "done":
                outcomes.append(RunOutcome(run_id, record.status, None, record.error))
                continue
            outcomes.append(RunOutcome(run_id, "done", db.get_result(run_id), None, stored_probes(db, run_id)))
        return outcomes


def study_protocol_defaults() -> dict[str, int]:
    """The study protocol's defaults (:class:`mtl_core.study.StudySpec`): ``patience``, ``max_epochs``."""
    from mtl_core.study import DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE

    return {"patience": DEFAULT_PATIENCE, "max_epochs": DEFAULT_MAX_EPOCHS}


@dataclass
class StudyForm:
    """What the Relationships page collects to launch a transfer study. Every run trains up to
    ``max_epochs`` epochs and stops once its validation loss has not improved for ``patience``
    (None: the engine's defaults, :func:`study_protocol_defaults`)."""

    suite: str
    tasks: list[str]
    suite_options: dict[str, Any] = field(default_factory=dict)
    strategy: str = "hard"
    method: str = "ew"
    max_epochs: int | None = None
    patience: int | None = None
    #: None: the suite's study defaults (``Suite.study_defaults``), else the trainer's.
    lr: float | None = None
    batch_size: int | None = None
    seeds: int = 2
    include_all: bool = True
    tag: bool = True


def _study_spec(form: StudyForm) -> Any:
    from mtl_core.config import TrainConfig
    from mtl_core.study import StudySpec, apply_study_defaults

    catalog()
    if len(form.tasks) < 2:
        raise ConfigError("tasks", "at least two tasks for a transfer study", list(form.tasks))
    base = TrainConfig.from_dict(apply_study_defaults({
        "suite": form.suite, "tasks": list(form.tasks), "suite_options": dict(form.suite_options),
        "strategy": form.strategy, "method": form.method, "lr": form.lr, "batch_size": form.batch_size,
    }))
    seeds = StudySpec.seeds_from(0, form.seeds)
    protocol = {key: value for key, value in (("patience", form.patience), ("max_epochs", form.max_epochs))
                if value is not None}
    return StudySpec(base, seeds=seeds, include_all=form.include_all, tag=form.tag, **protocol).validated()


def study_settings(form: StudyForm) -> str:
    """One line on the model and optimiser settings a study from ``form`` would use, e.g.
    "hard sharing (width 32, depth 2), Adam lr 0.003, batch 32"."""
    base = _study_spec(form).base
    options = dict(base.strategy_options)
    shape = f" (width {options['hidden']}, depth {options['depth']})" if {"depth", "hidden"} <= set(options) else ""
    return f"{base.strategy} sharing{shape}, {base.optimizer.capitalize()} lr {base.lr:g}, batch {base.batch_size}"


def study_size(form: StudyForm) -> int:
    """How many runs the study would queue (raises :class:`ConfigError` for a bad form)."""
    from mtl_core.study import plan_study

    return len(plan_study(_study_spec(form)))


def launch_study(form: StudyForm, owner: str | None = None) -> str:
    """Queue every run of a transfer study and return its id (the runs' ``group_id``)."""
    from mtl_core.study import run_study

    spec = _study_spec(form)
    group_id = f"study-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    submitter = _Submitter(owner)
    run_study(spec, executor=submitter, group_id=group_id)
    _write_manifest(group_id, {"kind": "study", "group_id": group_id, "created_at": time.time(),
                               "spec": spec.to_dict(), "run_ids": submitter.ids})
    return group_id


@dataclass
class StudyInfo:
    """A study's identity and progress."""

    group_id: str
    kind: str
    created_at: float
    suite: str
    tasks: list[str]
    seeds: list[int]
    total: int
    done: int
    failed: int
    manifest: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.done + self.failed >= self.total

    @property
    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created_at))
        return f"{self.suite}: {', '.join(self.tasks)} · {len(self.seeds)} seeds · {when}"


def _study_info(manifest: dict[str, Any]) -> StudyInfo:
    ids = [int(i) for i in manifest.get("run_ids", [])]
    statuses = {r.id: r.status for r in store().list_runs(group_id=manifest["group_id"])}
    done = sum(1 for i in ids if statuses.get(i) == "done")
    failed = sum(1 for i in ids if statuses.get(i, "failed") in ("failed", "cancelled"))
    if manifest.get("kind") == "grouping":
        study = _read_manifest(manifest.get("study", "")) or {}
        spec = study.get("spec", {})
        tasks = [t for g in manifest.get("groups", []) for t in g]
    else:
        spec = manifest.get("spec", {})
        tasks = list(spec.get("config", {}).get("tasks") or [])
    return StudyInfo(
        group_id=manifest["group_id"], kind=manifest.get("kind", "study"), created_at=float(manifest.get("created_at", 0)),
        suite=str(spec.get("config", {}).get("suite", "?")), tasks=tasks, seeds=list(spec.get("seeds", [])),
        total=len(ids), done=done, failed=failed, manifest=manifest,
    )


def list_studies(kind: str = "study") -> list[StudyInfo]:
    """Studies (or grouping evaluations, ``kind="grouping"``) of the lab home, newest first."""
    folder = _studies_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.json"):
        if path.name.startswith(".") or path.name.endswith(".result.json"):
            continue
        manifest = _read_manifest(path.stem)
        if manifest and manifest.get("kind", "study") == kind and "group_id" in manifest:
            out.append(_study_info(manifest))
    return sorted(out, key=lambda s: s.created_at, reverse=True)


def get_study(group_id: str) -> StudyInfo | None:
    manifest = _read_manifest(group_id)
    return _study_info(manifest) if manifest and "group_id" in manifest else None


def _spec_from(manifest: Mapping[str, Any]) -> Any:
    from mtl_core.study import StudySpec

    return StudySpec.from_dict(manifest["spec"])


_study_cache: dict[tuple[str, int, int], dict[str, Any]] = {}


def study_result(info: StudyInfo) -> dict[str, Any]:
    """The study's analysis (``study.json`` content), partial while runs are missing. A finished
    study's analysis is computed once and kept next to its manifest."""
    from mtl_core.study import run_study

    cached = _studies_dir() / f"{info.group_id}.result.json"
    if info.finished and cached.exists():
        try:
            return json.loads(cached.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    key = (info.group_id, info.done, info.failed)
    if key not in _study_cache:
        catalog()
        result = run_study(_spec_from(info.manifest), executor=_StoredOutcomes(info.manifest["run_ids"]),
                           group_id=info.group_id)
        _study_cache.clear()
        _study_cache[key] = result
        if info.finished:
            cached.write_text(json.dumps(result, default=str), encoding="utf-8")
    return _study_cache[key]


def _matrix(values: Any) -> list[list[float]] | None:
    if values is None:
        return None
    return [[math.nan if v is None else float(v) for v in row] for row in values]


def study_heatmaps(result: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data for the Relationships heatmaps: tasks, a clustering order (from transfer, else
    affinity, else cosine), the transfer statistics (``p_adjusted``: Holm-adjusted, computed here for a
    study written before it was stored), the affinity and cosine matrices, and the protocol."""
    from mtl_core.analysis import holm_adjust

    tasks = list(result["tasks"])
    transfer = result.get("transfer") or {}
    statistics = {key: _matrix(transfer.get(key)) for key in ("mean", "ci_low", "ci_high", "p_value", "p_adjusted")}
    if statistics["p_adjusted"] is None and statistics["p_value"] is not None:
        statistics["p_adjusted"] = holm_adjust(statistics["p_value"]).tolist()
    data = {
        "tasks": tasks,
        "transfer": statistics,
        "protocol": study_protocol(result),
        "affinity": _matrix(result.get("affinity")),
        "cosine": _matrix(result.get("cosine")),
        "planted_groups": result.get("planted_groups"),
        "delta_m": result.get("delta_m") or {},
        "n_failed": result.get("n_failed", 0),
    }
    basis = None
    for candidate in (data["transfer"]["mean"], data["affinity"], data["cosine"]):
        if candidate is not None and np.isfinite(np.asarray(candidate, dtype=float)[~np.eye(len(tasks), dtype=bool)]).any():
            basis = candidate
            break
    data["order_basis"] = basis
    return data


_ROLE_WORDS = {"alone": "alone", "pair": "pairs", "all": "all tasks", "affinity": "TAG runs"}


def study_protocol(result: Mapping[str, Any]) -> dict[str, str | None]:
    """How the study's runs were trained, in words: ``rule`` (``conventions.protocol``, None for a
    study written before it was recorded) and ``stopping`` ("Runs stopped after a median of 34
    epochs (alone 30, pairs 36)", None while no run has finished or for such an older study)."""
    from mtl_core.study import protocol_text

    rule = (result.get("conventions") or {}).get("protocol")
    spec = result.get("spec") or {}
    if rule and {"patience", "max_epochs"} <= set(spec):  # the same rule, without the file's field names
        rule = protocol_text(spec["patience"], spec["max_epochs"], spec.get("metric", "best"), for_json=False)
    stopping = result.get("stopping") or {}
    overall = stopping.get("overall")
    sentence = None
    if overall:
        parts = [f"{_ROLE_WORDS.get(role, role)} {summary['median']:g}" for role, summary in stopping.items()
                 if role != "overall"]
        sentence = f"Runs stopped after a median of {overall['median']:g} epochs ({', '.join(parts)})"
        sentence += f", between {overall['min']} and {overall['max']}."
        if overall.get("at_max_epochs"):
            sentence += (f" {overall['at_max_epochs']} of {overall['n']} runs reached the maximum number of "
                         "epochs before their validation loss stopped improving.")
    return {"rule": rule, "stopping": sentence}


def grouping_sources(result: Mapping[str, Any]) -> dict[str, list[list[float]]]:
    """Score matrices a grouping can come from (``scores[a][b]`` = benefit of b to a)."""
    from mtl_core.study import grouping_sources as sources

    return {name: matrix.tolist() for name, matrix in sources(result).items()}


def best_groupings(result: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """The best partition for each k = 1 … T from ``source`` (the study's own, else computed)."""
    stored = (result.get("groupings") or {}).get(source)
    if stored:
        return list(stored)
    from mtl_core.analysis import best_groupings as search

    scores = grouping_sources(result)[source]
    return [g.to_dict() for g in search(scores, result["tasks"])]


def predicted_scores(result: Mapping[str, Any], source: str, groups: Sequence[Sequence[str]]) -> dict[str, float]:
    """Each task's predicted score in ``groups`` (raises ``ValueError`` if not a partition)."""
    from mtl_core.analysis import task_scores

    return task_scores(grouping_sources(result)[source], [list(g) for g in groups], result["tasks"])


def launch_grouping(study: StudyInfo, groups: Sequence[Sequence[str]], source: str, owner: str | None = None) -> str:
    """Queue the runs that train ``groups`` (each group of 2+ tasks, per seed); returns its id."""
    from mtl_core.study import evaluate_grouping

    result = study_result(study)
    group_id = f"grouping-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    submitter = _Submitter(owner)
    evaluate_grouping(result, [list(g) for g in groups], source=source, executor=submitter, group_id=group_id)
    _write_manifest(group_id, {"kind": "grouping", "group_id": group_id, "created_at": time.time(),
                               "study": study.group_id, "groups": [list(g) for g in groups], "source": source,
                               "run_ids": submitter.ids})
    return group_id


def grouping_result(info: StudyInfo) -> dict[str, Any] | None:
    """Measured vs predicted of a grouping evaluation (None until its study can be read)."""
    from mtl_core.study import evaluate_grouping

    study = get_study(info.manifest.get("study", ""))
    if study is None:
        return None
    result = study_result(study)
    return evaluate_grouping(result, info.manifest["groups"], source=info.manifest.get("source", "transfer"),
                             executor=_StoredOutcomes(info.manifest["run_ids"]), group_id=info.group_id)


# --- lessons and playground ---------------------------------------------------------------------------------
# Workshop lessons (``assets/lessons``, :mod:`mtl_core.lessons`), presenter limits
# (:mod:`mtl_core.limits`) and the gradient-geometry playground (:mod:`mtl_core.playground`), for
# ``views/learn.py``, ``views/_lessons.py`` (the lesson shown beside the plots) and
# ``views/playground.py``. None of these engine modules imports torch when imported; the functions
# that need the registries call :func:`catalog` first.
from mtl_core.lessons import LessonError  # noqa: E402
from mtl_core.limits import LimitError, LimitsFileError  # noqa: E402

__all__ += [
    "LessonError",
    "LimitError",
    "LimitsFileError",
    "LESSON_PARAM",
    "enforce_limits",
    "limits_summary",
    "lesson_catalog",
    "get_lesson",
    "launch_lesson",
    "lesson_launches",
    "lesson_verdict",
    "gradient_methods",
    "playground",
    "PLAYGROUND_DEFAULTS",
    "playground_state",
    "playground_query",
    "playground_vectors",
]

#: The address parameter that names the lesson shown beside the plots (``/run?run=7&lesson=...``).
LESSON_PARAM = "lesson"


def enforce_limits(configs: Sequence[Mapping[str, Any]], owner: str | None = None) -> None:
    """Call before queueing runs: raises :class:`LimitError` (an :class:`MTLError`; :func:`explain`
    gives its one-line message) when ``configs`` would break a presenter limit for ``owner`` (the
    session's id), :class:`LimitsFileError` when the limits file is invalid; returns None otherwise."""
    from mtl_core.limits import check_limits, load_limits

    limits = load_limits()
    if not limits.active:
        return
    catalog()
    check_limits(list(configs), owner, store=store(), limits=limits)


def limits_summary() -> tuple[list[str], str | None]:
    """The presenter limits in force, one phrase each (empty: none), and the problem with the
    limits file (None when it reads fine)."""
    from mtl_core.limits import load_limits

    try:
        return load_limits().describe(), None
    except LimitsFileError as exc:
        return [], str(exc)


_lesson_cache: dict[Path, tuple[float, Any]] = {}
_verdict_cache: dict[str, dict[str, Any]] = {}


def _lesson_objects() -> tuple[list[Any], list[str]]:
    """Every valid lesson (cached per file until it changes) and one line per invalid file."""
    from mtl_core.lessons import lesson_files, load_lesson

    catalog()
    lessons, problems = [], []
    for path in lesson_files():
        try:
            mtime = path.stat().st_mtime
            cached = _lesson_cache.get(path)
            if cached is None or cached[0] != mtime:
                cached = _lesson_cache[path] = (mtime, load_lesson(path))
            lessons.append(cached[1])
        except (MTLError, OSError) as exc:
            problems.append(str(exc).splitlines()[0])
    ids = [lesson.id for lesson in lessons]
    duplicates = {lesson_id for lesson_id in ids if ids.count(lesson_id) > 1}
    if duplicates:
        problems.append(f"several lesson files use the id(s) {', '.join(sorted(duplicates))}; only the first is shown")
        seen: set[str] = set()
        lessons = [lesson for lesson in lessons if not (lesson.id in seen or seen.add(lesson.id))]
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.id)), problems


def lesson_catalog() -> tuple[list[dict[str, Any]], list[str]]:
    """The lessons in order (``Lesson.to_dict()``: id, title, story, question, expect, look_at,
    labels, runs, study, n_runs …) and one line per lesson file that cannot be used."""
    lessons, problems = _lesson_objects()
    return [lesson.to_dict() for lesson in lessons], problems


def _lesson(lesson_id: str) -> Any:
    lessons, _ = _lesson_objects()
    for lesson in lessons:
        if lesson.id == lesson_id:
            return lesson
    raise LessonError("", LESSON_PARAM, f"one of {', '.join(lesson.id for lesson in lessons) or 'no lessons'}",
                      lesson_id)


def get_lesson(lesson_id: Any) -> dict[str, Any] | None:
    """One lesson as :func:`lesson_catalog` gives it, or None (unknown id, invalid file)."""
    if isinstance(lesson_id, (list, tuple)):
        lesson_id = lesson_id[0] if lesson_id else ""
    try:
        return _lesson(str(lesson_id)).to_dict()
    except MTLError:
        return None


def _lessons_dir() -> Path:
    return lab_home() / "lessons"


class _OwnedSubmitter:
    """A study executor that only queues the runs, for ``owner``, and remembers their ids."""

    name = "submit"

    def __init__(self, owner: str | None) -> None:
        self.owner = owner
        self.ids: list[int] = []

    def execute(self, configs: Sequence[Any], *, group_id: str, progress: Any = None) -> list[Any]:
        from mtl_core.store import DEFAULT_OWNER
        from mtl_core.study import RunOutcome

        self.ids = workers.submit([c.to_dict() for c in configs], group_id=group_id, owner=self.owner or DEFAULT_OWNER,
                                  home=lab_home(), start=_autostart())
        return [RunOutcome(run_id, "queued") for run_id in self.ids]


def launch_lesson(lesson_id: str, owner: str | None = None) -> dict[str, Any]:
    """Queue a lesson's preset for ``owner`` (the session's id): its runs as one group, and its
    study (listed on the Relationships page) if it has one. Checks the presenter limits first
    (raises :class:`LimitError`). Returns the launch record: ``group_id``, ``lesson``, ``runs``
    (label, seed, run_id), ``run_ids``, ``study_id`` (or None), ``first_run`` (or None)."""
    from mtl_core.store import DEFAULT_OWNER
    from mtl_core.study import plan_study, run_study

    lesson = _lesson(lesson_id)
    configs = [run.config.to_dict() for run in lesson.runs]
    planned = plan_study(lesson.study) if lesson.study is not None else []
    enforce_limits(configs + [run.config.to_dict() for run in planned], owner)
    stamp, token = time.strftime("%Y%m%d-%H%M%S"), uuid.uuid4().hex[:6]
    group_id = f"lesson-{lesson.id}-{stamp}-{token}"
    run_ids: list[int] = []
    if configs:
        run_ids = workers.submit(configs, group_id=group_id, owner=owner or DEFAULT_OWNER, home=lab_home(),
                                 start=_autostart())
    study_id = None
    if lesson.study is not None:
        study_id = f"study-{stamp}-{token}"
        submitter = _OwnedSubmitter(owner)
        run_study(lesson.study, executor=submitter, group_id=study_id)
        _write_manifest(study_id, {"kind": "study", "group_id": study_id, "created_at": time.time(),
                                   "spec": lesson.study.to_dict(), "run_ids": submitter.ids, "lesson": lesson.id})
    launch = {
        "group_id": group_id,
        "lesson": lesson.id,
        "title": lesson.title,
        "owner": owner or DEFAULT_OWNER,
        "created_at": time.time(),
        "runs": [{"label": run.label, "seed": run.seed, "run_id": run_id} for run, run_id in zip(lesson.runs, run_ids)],
        "run_ids": run_ids,
        "study_id": study_id,
        "first_run": run_ids[0] if run_ids else None,
    }
    folder = _lessons_dir()
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{group_id}.json.tmp"
    temporary.write_text(json.dumps(launch, indent=2), encoding="utf-8")
    os.replace(temporary, folder / f"{group_id}.json")
    return launch


def _launch_progress(launch: dict[str, Any]) -> dict[str, Any]:
    ids = [int(i) for i in launch.get("run_ids", [])]
    study = get_study(launch["study_id"]) if launch.get("study_id") else None
    statuses = {r.id: r.status for r in store().list_runs(group_id=launch["group_id"])}
    done = sum(1 for i in ids if statuses.get(i) == "done")
    failed = sum(1 for i in ids if statuses.get(i, "failed") in ("failed", "cancelled"))
    total = len(ids)
    if study is not None:
        done, failed, total = done + study.done, failed + study.failed, total + study.total
    return {**launch, "done": done, "failed": failed, "total": total, "finished": done + failed >= total}


def lesson_launches(lesson_id: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
    """Launches of a lesson (all lessons when None), by ``owner`` when given, newest first, each
    with its progress: ``done``, ``failed``, ``total`` (the study's runs included), ``finished``."""
    folder = _lessons_dir()
    if not folder.is_dir():
        return []
    launches = []
    for path in folder.glob("lesson-*.json"):
        try:
            launch = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(launch, dict) or "group_id" not in launch:
            continue
        if lesson_id is not None and launch.get("lesson") != lesson_id:
            continue
        if owner is not None and launch.get("owner") != owner:
            continue
        launches.append(_launch_progress(launch))
    return sorted(launches, key=lambda launch: launch.get("created_at", 0), reverse=True)


def lesson_verdict(launch: Mapping[str, Any]) -> dict[str, Any] | None:
    """Whether the lesson's expected observation holds on the launch's own runs (``passed`` and
    ``explanation``, one line per check), once every run has finished; None before."""
    from mtl_core.lessons import LessonResults, RunResult, evaluate_check

    progress = _launch_progress(dict(launch))
    if not progress["finished"]:
        return None
    group_id = progress["group_id"]
    if group_id in _verdict_cache:
        return _verdict_cache[group_id]
    lesson = _lesson(progress["lesson"])
    db = store()
    runs = []
    for entry in progress.get("runs", []):
        try:
            record = db.get_run(int(entry["run_id"]))
        except RunNotFoundError:
            continue
        result = db.get_result(record.id) if record.status == "done" else None
        if not result:
            continue
        probes: dict[str, list[Any]] = {}
        epochs: dict[str, list[int]] = {}
        for row in db.probes_after(record.id):
            probes.setdefault(row.kind, []).append(row.value)
            epochs.setdefault(row.kind, []).append(row.epoch)
        complete = {kind: values for kind, values in epochs.items() if None not in values}
        runs.append(RunResult(entry["label"], int(entry["seed"]), result, probes, record.id, complete))
    study = None
    if progress.get("study_id"):
        info = get_study(progress["study_id"])
        study = study_result(info) if info is not None else None
    passed, explanation = evaluate_check(lesson, LessonResults(lesson.id, runs, study))
    verdict = {"passed": passed, "explanation": explanation, "failed_runs": progress["failed"]}
    _verdict_cache[group_id] = verdict
    return verdict


# The playground ----------------------------------------------------------------------------------------------
#: Defaults of the playground's state (the keys are its address parameters): dimension ``d``,
#: number of gradients ``n``, and per gradient i its angle ``ai`` (degrees), length ``li`` and, in
#: 3-D, elevation ``ei`` (degrees). The default pair conflicts, and the sum hurts task 1.
PLAYGROUND_DEFAULTS: dict[str, Any] = {
    "d": 2, "n": 2,
    "a1": 10, "l1": 1.0, "e1": 0,
    "a2": 135, "l2": 2.0, "e2": 0,
    "a3": -100, "l3": 1.5, "e3": 30,
}
_PLAYGROUND_RANGES = {"a": (-180, 180, "an angle in degrees from -180 to 180"),
                      "e": (-90, 90, "an elevation in degrees from -90 to 90"),
                      "l": (0.0, 3.0, "a length from 0 to 3")}


def gradient_methods() -> list[dict[str, Any]]:
    """The gradient methods the playground shows (name, description, paper, randomised)."""
    from mtl_core.playground import gradient_methods as methods

    catalog()
    return methods()


def playground_state(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The playground state read from address parameters (unknown ones are ignored), and one
    warning per bad value — each bad value falls back to its default. ``methods`` is the list of
    methods to show (``m=pcgrad,mgda``; all when absent)."""
    state = dict(PLAYGROUND_DEFAULTS)
    warnings: list[str] = []
    names = [m["name"] for m in gradient_methods()]
    state["methods"] = list(names)
    for key, raw in query.items():
        value = raw[0] if isinstance(raw, (list, tuple)) and raw else raw
        text = str(value).strip()
        if key in ("d", "n"):
            if text in ("2", "3"):
                state[key] = int(text)
            else:
                what = "the dimension" if key == "d" else "the number of gradients"
                warnings.append(f"`{key}` in the address must be 2 or 3 ({what}), got {text!r}; using "
                                f"{PLAYGROUND_DEFAULTS[key]}.")
        elif key in PLAYGROUND_DEFAULTS:
            low, high, expected = _PLAYGROUND_RANGES[key[0]]
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or not low <= number <= high:
                warnings.append(f"`{key}` in the address must be {expected}, got {text!r}; using "
                                f"{PLAYGROUND_DEFAULTS[key]}.")
                continue
            state[key] = round(number, 1) if key[0] == "l" else int(round(number))
        elif key == "m":
            chosen = [m.strip() for m in text.split(",") if m.strip()]
            unknown = [m for m in chosen if m not in names]
            if unknown:
                warnings.append(f"`m` in the address must list gradient methods ({', '.join(names)}); ignoring "
                                f"{', '.join(repr(m) for m in unknown)}.")
            known = [m for m in chosen if m in names]
            state["methods"] = known or list(names)
    return state, warnings


def playground_query(state: Mapping[str, Any]) -> dict[str, str]:
    """The address parameters of a playground state (only what matters: n gradients, elevations in
    3-D, the methods when not all), the inverse of :func:`playground_state`."""
    query = {"d": str(int(state["d"])), "n": str(int(state["n"]))}
    for i in range(1, int(state["n"]) + 1):
        query[f"a{i}"] = str(int(state[f"a{i}"]))
        query[f"l{i}"] = f"{float(state[f'l{i}']):g}"
        if int(state["d"]) == 3:
            query[f"e{i}"] = str(int(state[f"e{i}"]))
    methods = list(state.get("methods") or [])
    if methods and set(methods) != {m["name"] for m in gradient_methods()}:
        query["m"] = ",".join(methods)
    return query


def playground_vectors(state: Mapping[str, Any]) -> list[list[float]]:
    """The gradients of a playground state: (l cos a, l sin a) in 2-D, and in 3-D
    (l cos e cos a, l cos e sin a, l sin e)."""
    vectors = []
    for i in range(1, int(state["n"]) + 1):
        angle, length = math.radians(float(state[f"a{i}"])), float(state[f"l{i}"])
        if int(state["d"]) == 3:
            elevation = math.radians(float(state[f"e{i}"]))
            vectors.append([length * math.cos(elevation) * math.cos(angle),
                            length * math.cos(elevation) * math.sin(angle), length * math.sin(elevation)])
        else:
            vectors.append([length * math.cos(angle), length * math.sin(angle)])
    return [[0.0 if abs(v) < 1e-12 else v for v in vector] for vector in vectors]


def playground(gradients: Sequence[Sequence[float]], methods: Sequence[str] | None = None) -> dict[str, Any]:
    """Every chosen gradient method (and the plain sum, ``ew``) applied to ``gradients``: ``names``
    (g₁ …), ``cosines`` (T × T, None for a zero gradient), ``outputs`` (method → direction, for
    :func:`figures.gradient_arrows`), ``sentences`` (method → what it did, with numbers) and
    ``errors`` (method → why it failed)."""
    from mtl_core.playground import combine_all, cosine_matrix, gradient_names

    catalog()
    outcomes = combine_all(gradients, methods)
    return {
        "names": gradient_names(len(gradients)),
        "cosines": cosine_matrix(gradients),
        "outputs": {m: o.direction for m, o in outcomes.items() if o.direction is not None},
        "dots": {m: o.dots for m, o in outcomes.items() if o.dots is not None},
        "sentences": {m: o.sentence for m, o in outcomes.items()},
        "errors": {m: o.error for m, o in outcomes.items() if o.error},
    }


# --- your data and exports ---------------------------------------------------------------------------------
# CSV files turned into user suites (:mod:`mtl_core.datasets`, for ``views/data.py``) and the downloads
# of runs, studies and figures (:mod:`mtl_core.export`). Neither engine module imports torch when
# imported; saving or removing a suite checks the name against the suite registry, which does.
# Uploaded bytes go straight to the engine: nothing is written except the saved suite, by import_csv,
# under ``$MTL_LAB_HOME/suites``.
from mtl_core.datasets import CsvError  # noqa: E402
from mtl_core.export import ExportError  # noqa: E402

__all__ += [
    "CsvError",
    "ExportError",
    "inspect_upload",
    "columns_table",
    "default_suite_name",
    "import_upload",
    "import_summary",
    "user_suites",
    "remove_suite",
    "run_json",
    "run_csv",
    "study_exportable",
    "study_json",
    "study_csv",
    "figure_html",
    "figure_png",
    "png_export_available",
]


def _user_suites_stamp() -> tuple[str, int | None]:
    """The user-suites folder and its modification time: saving, replacing or removing a suite renames
    a folder inside it, which changes the time (None while the folder does not exist)."""
    folder = lab_home() / "suites"
    try:
        return str(folder.absolute()), folder.stat().st_mtime_ns
    except OSError:
        return str(folder.absolute()), None


def _described_suites() -> dict[str, dict[str, Any]]:
    """Every registered suite's ``describe()``, after the user suites of ``$MTL_LAB_HOME`` were
    scanned again (imports the suite registry, and torch)."""
    from mtl_core.suites import SUITES
    from mtl_core.suites.user_csv import refresh_user_suites

    refresh_user_suites()
    return {name: cls.describe() for name, cls in sorted(SUITES.items())}


def _forget_suites() -> None:
    """Make the next :func:`catalog` call describe the suites again."""
    global _catalog_suites_stamp
    with _catalog_lock:
        _catalog_suites_stamp = None


def inspect_upload(data: bytes, filename: str | None = None) -> Any:
    """The :class:`~mtl_core.datasets.CsvPreview` of an uploaded CSV file's bytes (columns, type
    guesses, missing counts, suggested task kinds, first rows); raises :class:`CsvError`."""
    import dataclasses

    from mtl_core.datasets import inspect_csv

    preview = inspect_csv(bytes(data))
    return dataclasses.replace(preview, filename=filename) if filename else preview


def columns_table(preview: Any) -> pd.DataFrame:
    """One row per column of a preview: name, detected type, missing and distinct values, the task it
    would make as a target (blank: it cannot be one), a few example values."""
    rows = [{
        "column": column.name,
        "type": column.dtype,
        "missing": column.n_missing,
        "distinct": column.n_distinct,
        "as a target": column.suggested_kind or "",
        "examples": ", ".join(column.examples[:3]),
    } for column in preview.columns]
    return pd.DataFrame(rows, columns=["column", "type", "missing", "distinct", "as a target", "examples"])


def default_suite_name(filename: str | None) -> str:
    """A valid suite name made from a file name (``my data.csv`` → ``my_data``; ``my_data`` when
    none), with ``_2``, ``_3`` … added when a suite (built-in or yours) already has it."""
    import re

    stem = Path(filename or "").stem
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:36].strip("_-") or "my_data"
    taken = {name.lower() for name in catalog()["suites"]}
    name, number = base, 2
    while name.lower() in taken:
        name, number = f"{base}_{number}", number + 1
    return name


# import_csv's messages are written for the command line; the page has a checkbox instead of the flag.
_PAGE_WORDING = {"(--replace)": "(tick “Replace a suite of the same name”)"}


def import_upload(
    data: bytes,
    filename: str | None,
    name: str,
    targets: Sequence[str],
    features: Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    missing: str = "drop",
    replace: bool = False,
) -> Any:
    """Save an uploaded CSV file as the user suite ``name`` (:func:`mtl_core.datasets.import_csv`:
    each target → a task) and make it visible to :func:`catalog`; returns the
    :class:`~mtl_core.datasets.ImportReport`. Raises :class:`CsvError` naming the column or setting;
    then nothing was saved."""
    from mtl_core.datasets import import_csv

    try:
        report = import_csv(bytes(data), str(name).strip(), targets=list(targets),
                            features=None if features is None else list(features), kinds=dict(kinds or {}),
                            missing=missing, replace=bool(replace), filename=filename)
    except CsvError as exc:
        message = str(exc)
        for cli, page in _PAGE_WORDING.items():
            message = message.replace(cli, page)
        raise CsvError(message, column=exc.column) from None
    finally:
        _forget_suites()
    return report


def import_summary(report: Any) -> dict[str, Any]:
    """An import report as the page shows it: ``name``, ``lines`` (the report in sentences), the row
    counts, ``tasks`` (a frame: task, kind, classes, class names, unlabelled rows), ``missing`` (a
    frame: column, missing cells, what happened to them; only columns with missing cells) and
    ``warnings``."""
    tasks = pd.DataFrame([{
        "task": target.name,
        "kind": target.kind,
        "classes": str(target.n_outputs) if target.kind == "classification" else "",
        "class names": ", ".join(target.classes) if target.classes else "(standardised numbers)",
        "unlabelled rows": target.n_unlabelled,
    } for target in report.targets], columns=["task", "kind", "classes", "class names", "unlabelled rows"])
    targets = set(report.task_names)

    def handled(column: str) -> str:
        if report.missing == "drop":
            return "rows dropped"
        if column in targets:
            return "rows unlabelled for this task"
        return f"{report.imputed.get(column, 0)} imputed"

    missing = pd.DataFrame([{"column": column, "missing cells": count, "handled": handled(column)}
                            for column, count in report.missing_counts.items() if count],
                           columns=["column", "missing cells", "handled"])
    return {
        "name": report.name,
        "lines": report.lines(),
        "description": report.description,
        "rows_read": report.n_rows_read,
        "rows_used": report.n_rows_used,
        "rows_dropped": report.n_rows_dropped,
        "inputs": len(report.inputs),
        "features": len(report.features),
        "missing_strategy": report.missing,
        "tasks": tasks,
        "missing": missing,
        "task_names": list(report.task_names),
        "warnings": list(report.warnings),
    }


def user_suites() -> list[dict[str, Any]]:
    """The saved user suites of ``$MTL_LAB_HOME``, sorted by name: ``name``, ``description``,
    ``source_file``, ``created_at``, ``n_rows``, ``n_inputs``, ``features`` and ``tasks`` (name, kind,
    classes)."""
    from mtl_core.datasets import list_user_suites

    return [{
        "name": spec["name"],
        "description": spec.get("description") or "",
        "source_file": spec.get("source_file"),
        "created_at": spec.get("created_at"),
        "n_rows": spec["n_rows"],
        "n_inputs": len(spec["inputs"]),
        "features": list(spec.get("features") or []),
        "tasks": [{"name": t["name"], "kind": t["kind"], "classes": t.get("classes")} for t in spec["targets"]],
    } for spec in list_user_suites()]


def remove_suite(name: str) -> None:
    """Delete the user suite ``name`` (runs already trained on it stay in the run store); raises
    :class:`CsvError` when there is no such user suite."""
    from mtl_core.datasets import remove_user_suite

    try:
        remove_user_suite(name)
    finally:
        _forget_suites()


def run_json(run_id: int) -> str:
    """Everything stored about a run (``mtl_lab.run_export/1``: the run, its metric rows, probes and
    result) as JSON — what ``python -m mtl_core export run ID`` writes."""
    from mtl_core.export import run_to_json

    return run_to_json(store().export_run(int(run_id)))


def run_csv(run_id: int) -> str:
    """A run's metric series as CSV: ``run_id, step, epoch, task, key, value``."""
    from mtl_core.export import run_to_csv

    return run_to_csv(store().export_run(int(run_id)))


def study_exportable(result: Mapping[str, Any]) -> bool:
    """Whether a study's analysis holds a transfer value to export (not before its first pair is done)."""
    from mtl_core.export import study_cells

    try:
        return any(cell["mean"] is not None for cell in study_cells(result))
    except ExportError:
        return False


def study_json(result: Mapping[str, Any]) -> str:
    """A study's analysis (``study.json``, as :func:`study_result` gives it) as JSON."""
    from mtl_core.export import study_to_json

    return study_to_json(result)


def study_csv(result: Mapping[str, Any]) -> str:
    """A study's transfer-matrix cells as CSV: target, partner, mean, ci_low, ci_high, p_value, p_adjusted, n,
    metric, cosine, affinity (one row per ordered pair of tasks)."""
    from mtl_core.export import study_to_csv

    return study_to_csv(result)


def figure_html(fig: Any) -> str:
    """A figure as a standalone interactive HTML page (plotly.js embedded: it works offline)."""
    from mtl_core.export import figure_to_html

    return figure_to_html(fig)


def figure_png(fig: Any) -> bytes:
    """A figure as a PNG image; raises :class:`ExportError` without the optional ``kaleido``."""
    from mtl_core.export import figure_to_png

    return figure_to_png(fig)


_png_available: bool | None = None


def png_export_available() -> bool:
    """Whether PNG export can work (the optional ``kaleido`` package is installed); looked up once."""
    global _png_available
    if _png_available is None:
        from mtl_core.export import static_export_available

        _png_available = static_export_available()
    return _png_available
