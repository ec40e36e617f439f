"""The Class page's data (``views/class_view.py``, the presenter's): every participant's latest launch of
a lesson as a small panel and as points of the class summary, the participants' display names, and
the lesson pushed to every Learn page (:mod:`mtl_core.workshop.classroom` keeps both under the lab home).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtl_core.errors import MTLError
from mtl_core.runs.store import RunNotFoundError
from mtl_core.workshop import classroom as engine_classroom
from services.catalog import store
from services.lessons import get_lesson, lesson_catalog, lesson_launches, lesson_results, lesson_verdict
from services.text import literal

__all__ = ["ClassView", "record_name", "recorded_name", "class_view", "push_lesson", "clear_pushed_lesson", "pushed_lesson"]

#: Finished runs' curves (run id → label's curve) and finished launches' checked quantities (group id →
#: (quantity, values)): nothing of them changes any more, so a live refresh reads only running runs.
_curve_cache: dict[int, dict[str, list[float]]] = {}
_quantity_cache: dict[str, tuple[str, dict[str, float]]] = {}


@dataclass
class ClassView:
    """One lesson across the class: ``panels`` and ``points`` as :func:`mtl_core.figures.class_panels`
    and :func:`mtl_core.figures.class_summary` take them, ``quantity`` (what the points measure; "" when
    the lesson's checks compare nothing the summary can draw), and how many participants' runs are
    still ``running``."""

    lesson: dict[str, Any]
    panels: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    quantity: str = ""
    running: int = 0


def record_name(owner: str, name: str) -> None:
    """Keep a participant's display name for the presenter's Class page (an empty one forgets it)."""
    engine_classroom.record_participant(owner, name)


def recorded_name(owner: str) -> str:
    """The display name ``owner`` gave last ("" for none): a new session of theirs starts with it."""
    return engine_classroom.participant_names().get(owner, "")


def _mean_loss_curve(run_id: int, finished: bool) -> dict[str, list[float]]:
    """A run's training loss per epoch, averaged over its tasks (``epochs``, ``loss``)."""
    if run_id in _curve_cache:
        return _curve_cache[run_id]
    by_epoch: dict[int, list[float]] = {}
    for row in store().metrics_after(run_id, -1, key="epoch_train_loss"):
        if row.epoch is not None and math.isfinite(row.value):
            by_epoch.setdefault(row.epoch, []).append(row.value)
    epochs = sorted(by_epoch)
    curve = {"epochs": [float(e) for e in epochs], "loss": [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]}
    if finished:
        _curve_cache[run_id] = curve
    return curve


def _curves(launch: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """The launch's first seed of each run label: its mean training-loss curve."""
    statuses = {run.id: run.status for run in store().list_runs(group_id=launch["group_id"])}
    curves: dict[str, dict[str, list[float]]] = {}
    for entry in launch.get("runs", []):
        label, run_id = str(entry["label"]), int(entry["run_id"])
        if label in curves or run_id not in statuses:
            continue
        try:
            curve = _mean_loss_curve(run_id, statuses[run_id] in ("done", "failed", "cancelled"))
        except RunNotFoundError:
            continue
        if curve["epochs"]:
            curves[label] = curve
    return curves


def _quantity(launch: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    group_id = launch["group_id"]
    if group_id not in _quantity_cache:
        lesson, results = lesson_results(launch)
        _quantity_cache[group_id] = engine_classroom.checked_quantity(lesson, results)
    return _quantity_cache[group_id]


def class_view(lesson_id: str) -> ClassView:
    """Every participant's latest launch of lesson ``lesson_id`` (an id of :func:`lesson_catalog`)."""
    lesson = get_lesson(lesson_id)
    if lesson is None:
        raise MTLError(f"lesson {lesson_id!r} is not a lesson of the Learn page")
    names = engine_classroom.participant_names()
    latest: dict[str, dict[str, Any]] = {}
    for launch in lesson_launches(lesson_id):  # newest first
        latest.setdefault(launch.get("owner") or "", launch)
    view = ClassView(lesson)
    quantities: list[str] = []
    for owner, launch in sorted(latest.items(), key=lambda item: (names.get(item[0], item[0]).casefold(), item[0])):
        participant = names.get(owner) or owner or "(no owner)"
        panel: dict[str, Any] = {"participant": participant, "curves": _curves(launch)}
        if not launch["finished"]:
            view.running += 1
            panel.update(status="running", note=f"{launch['done']} of {launch['total']} runs done")
        else:
            try:
                verdict = lesson_verdict(launch)
                quantity, values = _quantity(launch)
            except MTLError:
                verdict, quantity, values = None, "", {}
            if verdict is None:
                panel["status"] = "unchecked"
            else:
                panel["status"] = "passed" if verdict["passed"] else "failed"
            if launch["failed"]:
                panel["note"] = f"{launch['failed']} of {launch['total']} runs failed or cancelled"
            if quantity:
                quantities.append(quantity)
                view.points.append({"participant": participant, "values": values})
        view.panels.append(panel)
    view.quantity = quantities[0] if quantities else ""
    return view


def _lesson_ids() -> list[str]:
    lessons, _ = lesson_catalog()
    return [lesson["id"] for lesson in lessons]


def push_lesson(lesson_id: str) -> dict[str, Any]:
    """Push a lesson to every participant's Learn page (:class:`~mtl_core.errors.ConfigError` for an
    unknown id: nothing changes)."""
    return engine_classroom.push_lesson(lesson_id, _lesson_ids())


def clear_pushed_lesson() -> None:
    """Withdraw the pushed lesson."""
    engine_classroom.clear_pushed_lesson()


def pushed_lesson() -> tuple[dict[str, Any] | None, float, str | None]:
    """The pushed lesson (as :func:`services.lessons.get_lesson` gives it), when it was pushed, and a
    sentence when the pushed id names no lesson any more (the file is anyone's on the server)."""
    pushed = engine_classroom.pushed_lesson()
    if pushed is None:
        return None, 0.0, None
    lesson = get_lesson(pushed["lesson"])
    if lesson is None:
        known = ", ".join(_lesson_ids()) or "none"
        return None, pushed["pushed_at"], (f"The lesson the presenter pushed must be one of the lessons ({known}), "
                                           f"got {literal(repr(pushed['lesson']))}.")
    return lesson, pushed["pushed_at"], None
