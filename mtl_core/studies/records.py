"""Studies and grouping evaluations as records of the run store: launch, list, read back, collect.

A transfer study (:mod:`mtl_core.studies.study`) or a grouping evaluation is a row of the store's
``studies`` table (:class:`~mtl_core.runs.store.StudyRecord`: its id — the ``group_id`` of its runs —,
kind, owner, creation time, manifest and run ids in plan order) together with its runs.

* :func:`launch_study` / :func:`launch_grouping` plan the runs, check the presenter limits
  (:mod:`mtl_core.workshop.limits`, like every submission: :func:`submit_runs`), queue the runs and record
  the row in one transaction, and hand the runs to an :class:`~mtl_core.runs.executors.Executor`
  (default: the background worker pool). They return the id at once.
* :func:`collect` rebuilds the analysis from the stored outcomes at any time: partial while runs
  are unfinished; a finished study's analysis is computed once and kept in the store.
* :func:`list_studies` / :func:`get_study` give each record with its progress (:class:`StudyInfo`).

:func:`mtl_core.studies.study.run_study` (the CLI, lessons, benchmarks) is the same launch, trained in the
foreground, then collected.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtl_core.config import TrainConfig
from mtl_core.errors import MTLError
from mtl_core.runs.executors import Executor, make_executor, run_outcomes
from mtl_core.runs.store import (
    DEFAULT_OWNER,
    FINISHED_STATUSES,
    STUDY_KINDS,
    RunStore,
    StudyNotFoundError,
    StudyRecord,
)
from mtl_core.studies.grouping_runs import GroupingPlan, collect_grouping, plan_grouping
from mtl_core.studies.study import StudySpec, collect_study, new_study_id, plan_study

__all__ = [
    "StudyInfo",
    "submit_runs",
    "launch_study",
    "launch_grouping",
    "queue_grouping",
    "collect",
    "get_study",
    "list_studies",
    "study_spec",
    "StudyNotFoundError",
]


def _checked(
    configs: Sequence[TrainConfig | Mapping[str, Any]], store: RunStore, owner: str | None
) -> list[TrainConfig]:
    """``configs`` validated (:class:`~mtl_core.errors.ConfigError` names ``configs[i]``) and
    within the presenter limits of the store's home for ``owner`` (:class:`~mtl_core.workshop.limits.LimitError`)."""
    from mtl_core.runs.workers import validate_config
    from mtl_core.workshop.limits import check_limits

    batch = list(configs)
    validated = [validate_config(config, index if len(batch) > 1 else None) for index, config in enumerate(batch)]
    check_limits(validated, owner, store=store, home=store.home)
    return validated


def _start(ids: Sequence[int], store: RunStore, executor: Executor | None, start: bool) -> None:
    if start and ids:
        (executor or make_executor(home=store.home)).start(ids)


def submit_runs(
    configs: Sequence[TrainConfig | Mapping[str, Any]],
    store: RunStore,
    *,
    owner: str | None = None,
    group_id: str | None = None,
    names: Sequence[str | None] | None = None,
    executor: Executor | None = None,
    start: bool = True,
) -> list[int]:
    """Queue runs for ``owner`` (a session or user id; None = the store's default owner), all or
    none, after validating them and checking the presenter limits; hand them to ``executor``
    unless ``start`` is False (a pool started later picks them up). Returns the run ids."""
    validated = _checked(configs, store, owner)
    ids = store.create_runs([c.to_dict() for c in validated], names=names, owner=owner or DEFAULT_OWNER,
                            group_id=group_id)
    _start(ids, store, executor, start)
    return ids


def _record(
    kind: str,
    study_id: str,
    manifest: Mapping[str, Any],
    configs: Sequence[TrainConfig],
    store: RunStore,
    owner: str | None,
    executor: Executor | None,
    start: bool,
) -> list[int]:
    """Check, queue and record a study's runs (one transaction), then start them."""
    validated = _checked(configs, store, owner)
    ids = store.create_study(study_id, kind, manifest, [c.to_dict() for c in validated], owner=owner or DEFAULT_OWNER)
    _start(ids, store, executor, start)
    return ids


def launch_study(
    spec: StudySpec,
    store: RunStore,
    owner: str | None = None,
    *,
    executor: Executor | None = None,
    start: bool = True,
    study_id: str | None = None,
    lesson: str | None = None,
) -> str:
    """Plan a transfer study, queue its runs for ``owner`` and record it; returns its id (a new one
    unless ``study_id`` is given). ``lesson``: the id of the lesson that launched it."""
    spec = spec.validated()
    study_id = study_id or new_study_id("study")
    manifest: dict[str, Any] = {"spec": spec.to_dict()}
    if lesson is not None:
        manifest["lesson"] = lesson
    _record("study", study_id, manifest, [run.config for run in plan_study(spec)], store, owner, executor, start)
    return study_id


def queue_grouping(
    plan: GroupingPlan,
    study_id: str | None,
    store: RunStore,
    owner: str | None = None,
    *,
    grouping_id: str | None = None,
    executor: Executor | None = None,
    start: bool = True,
) -> list[int]:
    """Queue the runs of a grouping ``plan`` of the study ``study_id``: recorded as a grouping
    evaluation when that study is a record of ``store``, else only as a group of runs (a study read
    from a file). Returns the run ids."""
    grouping_id = grouping_id or new_study_id("grouping")
    try:
        store.get_study(study_id or "")
    except StudyNotFoundError:
        return submit_runs(plan.configs, store, owner=owner, group_id=grouping_id, executor=executor, start=start)
    manifest = {"study": study_id, "groups": [list(group) for group in plan.groups], "source": plan.source}
    return _record("grouping", grouping_id, manifest, plan.configs, store, owner, executor, start)


def launch_grouping(
    study_id: str,
    groups: Sequence[Sequence[str]],
    source: str,
    store: RunStore,
    owner: str | None = None,
    *,
    executor: Executor | None = None,
    start: bool = True,
) -> str:
    """Queue the runs that evaluate ``groups`` of the study ``study_id`` (each group of two or more
    tasks, per seed, by the study's protocol; :func:`mtl_core.studies.grouping_runs.plan_grouping`) and record the
    evaluation; returns its id. Raises :class:`StudyNotFoundError` for an unknown study."""
    plan = plan_grouping(collect(study_id, store), [list(group) for group in groups], source)
    grouping_id = new_study_id("grouping")
    queue_grouping(plan, study_id, store, owner, grouping_id=grouping_id, executor=executor, start=start)
    return grouping_id


def study_spec(record: StudyRecord) -> StudySpec:
    """The spec of a study record (not yet validated)."""
    return StudySpec.from_dict(record.manifest["spec"])


def _collect_grouping(record: StudyRecord, store: RunStore) -> dict[str, Any]:
    study = collect(str(record.manifest.get("study", "")), store)
    plan = plan_grouping(study, record.manifest["groups"], record.manifest.get("source", "transfer"))
    if len(plan.configs) != len(record.run_ids):
        raise MTLError(f"grouping {record.id}: it lists {len(record.run_ids)} runs, its plan has {len(plan.configs)}")
    return collect_grouping(plan, run_outcomes(store, record.run_ids))


def collect(study_id: str, store: RunStore) -> dict[str, Any]:
    """The analysis of a study (``study.json``'s content, :func:`mtl_core.studies.study.collect_study`) or
    of a grouping evaluation (:func:`mtl_core.studies.grouping_runs.collect_grouping`) from its stored outcomes;
    partial while runs are unfinished. A finished study's analysis is kept in the store.
    Raises :class:`StudyNotFoundError` for an unknown id (or a grouping whose study is gone)."""
    record = store.get_study(study_id)
    if record.kind == "grouping":
        return _collect_grouping(record, store)
    kept = store.get_study_result(study_id)
    if kept is not None:
        return kept
    spec = study_spec(record).validated()
    runs = plan_study(spec)
    if len(runs) != len(record.run_ids):
        raise MTLError(f"study {study_id}: it lists {len(record.run_ids)} runs, its plan has {len(runs)}")
    outcomes = run_outcomes(store, record.run_ids)
    result = collect_study(spec, runs, outcomes, study_id)
    if all(outcome.status in FINISHED_STATUSES for outcome in outcomes):
        store.set_study_result(study_id, result)
    return result


@dataclass
class StudyInfo:
    """A study's (or grouping evaluation's) identity and progress. ``manifest`` is the record as
    :meth:`~mtl_core.runs.store.StudyRecord.to_dict` gives it (a grouping's ``study``, ``groups``,
    ``source``; a study's ``spec``, ``lesson``)."""

    group_id: str
    kind: str
    owner: str
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
        seeds = f"{len(self.seeds)} seed{'' if len(self.seeds) == 1 else 's'}"
        return f"{self.suite}: {', '.join(self.tasks)} · {seeds} · {when}"


def _info(record: StudyRecord, store: RunStore) -> StudyInfo:
    statuses = {run.id: run.status for run in store.list_runs(group_id=record.id)}
    done = sum(1 for run_id in record.run_ids if statuses.get(run_id) == "done")
    failed = sum(1 for run_id in record.run_ids if statuses.get(run_id, "failed") in ("failed", "cancelled"))
    if record.kind == "grouping":
        try:
            spec = store.get_study(str(record.manifest.get("study", ""))).manifest.get("spec", {})
        except StudyNotFoundError:
            spec = {}
        tasks = [task for group in record.manifest.get("groups", []) for task in group]
    else:
        spec = record.manifest.get("spec", {})
        tasks = list(spec.get("config", {}).get("tasks") or [])
    return StudyInfo(
        group_id=record.id, kind=record.kind, owner=record.owner, created_at=record.created_at,
        suite=str(spec.get("config", {}).get("suite", "?")), tasks=tasks, seeds=list(spec.get("seeds", [])),
        total=len(record.run_ids), done=done, failed=failed, manifest=record.to_dict(),
    )


def get_study(study_id: str, store: RunStore) -> StudyInfo:
    """One study or grouping evaluation with its progress (raises :class:`StudyNotFoundError`)."""
    return _info(store.get_study(study_id), store)


def list_studies(store: RunStore, kind: str = "study", owner: str | None = None) -> list[StudyInfo]:
    """Studies (or grouping evaluations, ``kind="grouping"``) of the store, of ``owner`` when
    given, newest first."""
    if kind not in STUDY_KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(STUDY_KINDS)}, got {kind!r}")
    return [_info(record, store) for record in store.list_studies(kind=kind, owner=owner)]
