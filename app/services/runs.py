"""Building, checking, queueing and listing runs: the Train and Runs pages' side of the engine."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mtl_core.analysis import baselines
from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError, MTLError
from mtl_core.runs import labels, workers
from mtl_core.runs.store import (
    FINISHED_STATUSES,
    RunNotFoundError,
    RunRecord,
    RunStateError,
    as_run_id,
    run_duration,
)
from mtl_core.studies.records import submit_runs
from mtl_core.workshop.access import AccessError, Actor
from mtl_core.workshop.limits import LimitsFileError
from services.catalog import autostart, catalog, store, suite_tasks
from services.text import engine_message, literal

__all__ = [
    "MTLError",
    "ConfigError",
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
    "step_progress",
    "run_labels",
    "setting_labels",
    "picker_labels",
    "pending_baseline",
    "PanelChoice",
    "panel_choices",
]


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
    probe_interval: int = TrainConfig.probe_interval
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


def check_configs(configs: Sequence[Mapping[str, Any]]) -> list[TrainConfig]:
    """Validate every config (options resolved, defaults filled in) where it enters, once: the
    validated configs go on to :func:`queue_runs` as they are. Raises the first
    :class:`ConfigError` (its field names the setting, without a ``configs[i]`` prefix)."""
    catalog()
    return [workers.validate_config(config) for config in configs]


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
    if isinstance(exc, LimitsFileError):  # the server's path is nobody's business on a page
        got = literal(repr(exc.got))
        return engine_message(f"The presenter's limits file cannot be used: `{exc.field}` must be {exc.expected}, "
                              f"got {got}.")
    if isinstance(exc, ConfigError):
        field_name = exc.field.split("].", 1)[-1] if exc.field.startswith("configs[") else exc.field
        head, _, option = field_name.partition(".")
        label = _FIELD_LABELS.get(head, head)
        if option:
            label = f"{label} `{option}`"
        got = exc.got if isinstance(exc.got, (int, float)) else literal(repr(exc.got))  # a name the user typed
        return engine_message(f"{label} must be {exc.expected} (got {got}).")
    return engine_message(str(exc).strip().splitlines()[0]) if str(exc).strip() else exc.__class__.__name__


def queue_runs(
    configs: Sequence[TrainConfig | Mapping[str, Any]],
    *,
    group_id: str | None = None,
    names: Sequence[str | None] | None = None,
    owner: str | None = None,
) -> list[int]:
    """Validate and queue runs (all or none) for ``owner`` (the session's id), after checking the
    presenter limits (:class:`LimitError`); start the pool if allowed; returns the run ids."""
    catalog()
    group_id = group_id or f"ui-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    return submit_runs(configs, store(), owner=owner, group_id=group_id, names=names, start=autostart())


# --- runs ------------------------------------------------------------------------------------------------
def parse_run_id(text: Any) -> int:
    """A run id from a URL parameter or widget; raises ``ValueError`` with a message for the page."""
    if isinstance(text, (list, tuple)):
        text = text[0] if text else ""
    value = as_run_id(str(text))
    if value is None:
        shown = str(text) if len(str(text)) <= 40 else str(text)[:39] + "…"
        raise ValueError(f"`run` in the address must be a run number such as 3, got {shown!r}")
    return value


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
    #: The owner id of the participant who queued it (the store's ``owner``).
    owner: str | None = None

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
        owner=record.owner,
    )


def list_runs(
    status: str | Sequence[str] | None = None,
    suite: str | None = None,
    method: str | None = None,
    strategy: str | None = None,
    group_id: str | None = None,
    limit: int | None = None,
    owner: str | None = None,
) -> list[RunSummary]:
    """Runs of the store (of ``owner`` when given), newest first."""
    records = store().list_runs(status=status, suite=suite, method=method, strategy=strategy, group_id=group_id,
                                limit=limit, owner=owner)
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


def _label_config(run: RunSummary) -> dict[str, Any]:
    """The run's config as labels compare it: the tasks it trained named (``tasks: null`` = the
    suite's tasks reads the same as those tasks listed)."""
    return baselines.resolved_config(run.config, run.task_specs)


@functools.lru_cache(maxsize=64)
def _suite_task_names(suite: str, options_json: str) -> tuple[str, ...] | None:
    """The names of the tasks ``suite`` offers with these options (None when it cannot be built)."""
    try:
        return tuple(spec["name"] for spec in suite_tasks(suite, json.loads(options_json)))
    except Exception:  # noqa: BLE001 - a label falls back to the config as stored
        return None


def _label_configs(runs: Sequence[RunSummary]) -> list[dict[str, Any]]:
    """The runs' configs as labels compare them: a run that has not started yet (no task specs in its
    record) and asks for all of its suite's tasks (``tasks: null``) names them too, as the runs of
    the same suite that have started do — else a queued run's label would lack the "tasks …" that a
    started twin's label shows."""
    configs = [_label_config(run) for run in runs]
    known: dict[tuple[str, str], list[str]] = {}
    for run, config in zip(runs, configs, strict=True):
        if run.config.get("tasks") is None and config.get("tasks") is not None:
            known[(str(run.config.get("suite")), json.dumps(run.config.get("suite_options") or {}, sort_keys=True))] = \
                config["tasks"]
    for run, config in zip(runs, configs, strict=True):
        if config.get("tasks") is None:
            key = (str(run.config.get("suite")), json.dumps(run.config.get("suite_options") or {}, sort_keys=True))
            names = known.get(key)
            if names is None:
                found = _suite_task_names(*key)
                names = list(found) if found is not None else None
            if names is not None:
                config["tasks"] = names
    return configs


def run_labels(runs: Sequence[RunSummary], always: Sequence[str] = ()) -> dict[int, str]:
    """Run id → a short label naming what differs between ``runs`` (:func:`mtl_core.runs.labels.run_labels`):
    ``hard · p_in 0.9 · seed 1``. Plain text with the user's names: escape it for markdown."""
    return dict(zip([run.id for run in runs], labels.run_labels(_label_configs(runs), always), strict=True))


def setting_labels(runs: Sequence[RunSummary], always: Sequence[str] = ()) -> dict[int, str]:
    """Run id → its setting's label (:func:`mtl_core.runs.labels.setting_labels`): runs that differ
    only in their seed share one, runs with different settings never do."""
    return dict(zip([run.id for run in runs], labels.setting_labels(_label_configs(runs), always), strict=True))


def picker_labels(runs: Sequence[RunSummary]) -> dict[int, str]:
    """Run id → ``#34 planted · hard · ew · p_in 0.9 · seed 1`` for a list of runs from many
    submissions: the suite, strategy, method and seed, and what else tells the run apart from the
    runs queued with it (among ``runs``)."""
    groups: dict[str | int, list[RunSummary]] = {}
    for run in runs:
        groups.setdefault(run.group_id or run.id, []).append(run)
    out = {}
    for members in groups.values():
        named = run_labels(members, always=("strategy", "method", "seed"))
        for run in members:
            out[run.id] = f"#{run.id} {run.suite} · {named[run.id]}"
    return {run.id: out[run.id] for run in runs}


@dataclass(frozen=True)
class PanelChoice:
    """A set of runs of one launch to show side by side, and what it is ("seed 0 of each setting")."""

    label: str
    run_ids: tuple[int, ...]


def panel_choices(runs: Sequence[RunSummary], limit: int) -> list[PanelChoice]:
    """Ways to show ``runs`` (queued together) ``limit`` at a time, the default first: all of them
    when they fit; else one seed of every setting (seed 0 first), so that the first view covers
    what the launch compares, then every seed of one setting. A choice longer than ``limit`` is
    cut into parts ("(1/2)")."""
    if limit < 1:
        raise ValueError(f"`limit` must be a number of panels ≥ 1, got {limit!r}")
    ordered = sorted(runs, key=lambda run: run.id)
    if len(ordered) <= limit:
        return [PanelChoice(f"all {len(ordered)} runs", tuple(run.id for run in ordered))]
    named = setting_labels(ordered)
    by_setting: dict[str, list[RunSummary]] = {}
    for run in ordered:
        by_setting.setdefault(named[run.id], []).append(run)
    seeds = sorted({run.seed for run in ordered})
    choices: list[PanelChoice] = []

    def add(label: str, ids: list[int]) -> None:
        parts = [ids[start:start + limit] for start in range(0, len(ids), limit)]
        for index, part in enumerate(parts):
            suffix = f" ({index + 1}/{len(parts)})" if len(parts) > 1 else ""
            choices.append(PanelChoice(label + suffix, tuple(part)))

    if len(by_setting) == 1:  # only the seed differs
        add("every seed", [run.id for run in ordered])
        return choices
    for seed in seeds:
        ids = [next(run.id for run in members if run.seed == seed) for members in by_setting.values()
               if any(run.seed == seed for run in members)]
        add(f"seed {seed} of each setting" if len(seeds) > 1 else "each setting", ids)
    if len(seeds) > 1:
        for setting, members in by_setting.items():
            add(f"every seed of {setting}", [run.id for run in members])
    return choices


def pending_baseline(run: RunSummary) -> RunSummary | None:
    """A queued or running single-task baseline for ``run`` (what its Results tab waits for before it
    can show Δm), or None: one with the same suite, options, tasks and seed, as
    :func:`mtl_core.analysis.baselines.find_baseline` matches finished ones."""
    if baselines.is_baseline(_label_config(run)):
        return None
    waiting = list_runs(status=("queued", "running"), suite=run.suite, strategy=baselines.BASELINE_STRATEGY)
    config = _label_config(run)

    def resolved(other: RunSummary) -> dict[str, Any]:
        # A queued run has not named its tasks yet: "all of the suite's tasks" (no list) are the tasks
        # ``run`` trained when it too asked for all of them (same suite and options, compared below).
        out = _label_config(other)
        if not out.get("tasks") and not run.config.get("tasks"):
            out["tasks"] = config.get("tasks")
        return out

    found = baselines.find_baseline(config, {other.id: resolved(other) for other in waiting})
    return next((other for other in waiting if other.id == found), None)


def is_study_run(run: RunSummary) -> bool:
    """Whether the run belongs to a transfer study or a grouping evaluation."""
    return bool(run.group_id) and run.group_id.startswith(("study-", "grouping-"))


def step_progress(run: RunSummary, last_step: int | None) -> float | None:
    """Fraction of the run's steps done once ``last_step`` was trained (1 when done), None when unknown."""
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
        progress = step_progress(run, last)
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


def _check_access(run_id: int, actor: Actor | None) -> None:
    """Raise :class:`AccessError` unless ``actor`` (None: the single user) may manage run ``run_id``."""
    if actor is not None and not actor.manages_all:
        actor.check(store().get_run(run_id).owner, f"Run {run_id}")


def cancel_run(run_id: int, actor: Actor | None = None) -> str:
    """Cancel a queued or running run on behalf of ``actor`` (None: the single user, who may manage
    every run); returns a sentence for the page, also when another participant's run is refused."""
    try:
        _check_access(run_id, actor)
        outcome = store().request_cancel(run_id)
    except (RunStateError, RunNotFoundError, AccessError) as exc:
        return str(exc)
    if outcome == "cancelled":
        return f"Run {run_id} was cancelled before it started."
    return f"Run {run_id} will stop within a second or two (its metrics so far are kept)."


def delete_run(run_id: int, actor: Actor | None = None) -> str | None:
    """Delete a finished or queued run on behalf of ``actor`` (None: the single user); None on
    success, else why not (another participant's run is refused)."""
    try:
        _check_access(run_id, actor)
        store().delete_run(run_id)
    except (RunStateError, RunNotFoundError, AccessError) as exc:
        return str(exc)
    return None
