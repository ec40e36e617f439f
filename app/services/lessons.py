"""Workshop lessons (:mod:`mtl_core.workshop.lessons`, shipped in the package) for ``views/learn.py`` and
``views/_lessons.py`` (the lesson shown beside the plots): the catalogue, launching a lesson's preset
(its runs and its study), the launches' progress and the verdict on the lesson's expectation."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtl_core._files import replace_text
from mtl_core.errors import MTLError
from mtl_core.runs.store import DEFAULT_OWNER, RunNotFoundError, lab_home
from mtl_core.workshop import lessons as engine_lessons
from mtl_core.workshop.lessons import (
    Lesson,
    LessonError,
    LessonResults,
    RunResult,
    evaluate_check,
    lesson_files,
    load_lesson,
)
from services.catalog import autostart, catalog, store
from services.studies import get_study, study_result

__all__ = [
    "LessonError",
    "LESSON_PARAM",
    "lesson_catalog",
    "get_lesson",
    "launch_lesson",
    "lesson_launches",
    "lesson_results",
    "lesson_verdict",
]

#: The address parameter that names the lesson shown beside the plots (``/run?run=7&lesson=...``).
LESSON_PARAM = "lesson"

_lesson_cache: dict[Path, tuple[float, Lesson]] = {}
_verdict_cache: dict[str, dict[str, Any]] = {}


def _lesson_objects() -> tuple[list[Lesson], list[str]]:
    """Every valid lesson (cached per file until it changes) and one line per invalid file."""
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


def _lesson(lesson_id: str) -> Lesson:
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


def launch_lesson(lesson_id: str, owner: str | None = None) -> dict[str, Any]:
    """Queue a lesson's preset for ``owner`` (the session's id): its runs as one group, and its
    study (listed on the Relationships page) if it has one (:func:`mtl_core.workshop.lessons.launch_lesson`,
    which checks the presenter limits first: :class:`LimitError`). Returns the launch record:
    ``group_id``, ``lesson``, ``runs`` (label, seed, run_id), ``run_ids``, ``study_id`` (or None),
    ``first_run`` (or None)."""
    lesson = _lesson(lesson_id)
    queued = engine_lessons.launch_lesson(lesson, store(), owner, start=autostart())
    run_ids = queued["run_ids"]
    launch = {
        "group_id": queued["group_id"],
        "lesson": lesson.id,
        "title": lesson.title,
        "owner": owner or DEFAULT_OWNER,
        "created_at": time.time(),
        "runs": [{"label": run.label, "seed": run.seed, "run_id": run_id} for run, run_id in zip(lesson.runs, run_ids)],
        "run_ids": run_ids,
        "study_id": queued["study_id"],
        "first_run": run_ids[0] if run_ids else None,
    }
    replace_text(_lessons_dir() / f"{launch['group_id']}.json", json.dumps(launch, indent=2))
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


def _launch_results(runs: Sequence[Mapping[str, Any]]) -> list[RunResult]:
    """The finished runs of a launch, with their results and probes, as the lesson checks read them."""
    db = store()
    results = []
    for entry in runs:
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
        results.append(RunResult(entry["label"], int(entry["seed"]), result, probes, record.id, complete))
    return results


def lesson_results(launch: Mapping[str, Any]) -> tuple[Lesson, LessonResults]:
    """The lesson of a launch and what its finished runs (and its study, once analysed) measured, as
    the lesson's checks read them."""
    lesson = _lesson(launch["lesson"])
    runs = _launch_results(launch.get("runs", []))
    study = None
    if launch.get("study_id"):
        info = get_study(launch["study_id"])
        study = study_result(info) if info is not None else None
    return lesson, LessonResults(lesson.id, runs, study)


def lesson_verdict(launch: Mapping[str, Any]) -> dict[str, Any] | None:
    """Whether the lesson's expected observation holds on the launch's own runs (``passed`` and
    ``explanation``, one line per check), once every run has finished; None before."""
    progress = _launch_progress(dict(launch))
    if not progress["finished"]:
        return None
    group_id = progress["group_id"]
    if group_id in _verdict_cache:
        return _verdict_cache[group_id]
    lesson, results = lesson_results(progress)
    passed, explanation = evaluate_check(lesson, results)
    verdict = {"passed": passed, "explanation": explanation, "failed_runs": progress["failed"]}
    _verdict_cache[group_id] = verdict
    return verdict
