"""The presenter's view of a workshop: who is in the room, the lesson pushed to everyone, and what each
participant's runs of a lesson measured.

Two small files under ``$MTL_LAB_HOME/classroom/`` (no change to the run store):

* ``participants.json`` — owner id → the display name a participant gave (their runs carry the owner
  id, so the name follows every run they queue; a participant who clears their name is listed by id);
* ``pushed.json`` — the lesson the presenter pushed (``lesson``, ``pushed_at``), read by every
  participant's Learn page; absent when none is pushed.

Both are written whole to a temporary file and moved into place, so a reader never sees half a file,
and a file that cannot be read counts as empty. Only the presenter's Class page reads the names:
participants never see each other's.

:func:`checked_quantity` turns a participant's lesson results into the numbers the lesson's checks
compare (Δm of a label against its baseline, mean gradient cosine, a task's test metric), one value
per series, for the class summary.
"""

from __future__ import annotations

import json
import os
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mtl_core._files import replace_text
from mtl_core.errors import ConfigError
from mtl_core.settings import settings
from mtl_core.workshop.lesson_checks import _seed_mean, mean_pairwise_cosine

__all__ = [
    "MAX_NAME_LENGTH",
    "classroom_dir",
    "clean_name",
    "record_participant",
    "participant_names",
    "push_lesson",
    "clear_pushed_lesson",
    "pushed_lesson",
    "checked_quantity",
]

#: The longest display name kept (the sidebar's field allows as many characters).
MAX_NAME_LENGTH = 40
_PARTICIPANTS = "participants.json"
_PUSHED = "pushed.json"
_write_lock = threading.Lock()  # the server's sessions are threads of one process


def classroom_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """``<lab home>/classroom``: where the participants registry and the pushed lesson are kept."""
    return (Path(home).expanduser() if home is not None else settings().home) / "classroom"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: Mapping[str, Any]) -> None:
    replace_text(path, json.dumps(data, indent=1, ensure_ascii=False))


def clean_name(name: object) -> str:
    """A display name as kept: text, control characters removed, spaces collapsed, at most
    :data:`MAX_NAME_LENGTH` characters ("" for none)."""
    if name is None:
        return ""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in str(name))
    return " ".join(text.split())[:MAX_NAME_LENGTH]


def record_participant(owner: str, name: object, home: str | os.PathLike[str] | None = None) -> bool:
    """Keep ``owner``'s display name (an empty name forgets it); returns whether the file changed."""
    if not isinstance(owner, str) or not owner:
        raise ConfigError("owner", "a participant's owner id", owner)
    name = clean_name(name)
    path = classroom_dir(home) / _PARTICIPANTS
    with _write_lock:
        registry = _read(path)
        current = registry.get(owner, {}).get("name") if isinstance(registry.get(owner), dict) else None
        if (current or "") == name:
            return False
        if name:
            registry[owner] = {"name": name, "updated_at": time.time()}
        else:
            registry.pop(owner, None)
        _write(path, registry)
    return True


def participant_names(home: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Owner id → display name, for every participant who gave one."""
    registry = _read(classroom_dir(home) / _PARTICIPANTS)
    names = {}
    for owner, entry in registry.items():
        name = clean_name(entry.get("name")) if isinstance(entry, dict) else ""
        if name:
            names[str(owner)] = name
    return names


def push_lesson(lesson_id: object, known: Iterable[str], home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Push lesson ``lesson_id`` (one of ``known``, the ids of the lessons) to every participant's
    Learn page; raises :class:`ConfigError` naming the lesson for an unknown id (nothing changes)."""
    known = list(known)
    if not isinstance(lesson_id, str) or lesson_id not in known:
        raise ConfigError("lesson", f"one of {', '.join(known) or 'no lessons'}", lesson_id)
    pushed = {"lesson": lesson_id, "pushed_at": time.time()}
    with _write_lock:
        _write(classroom_dir(home) / _PUSHED, pushed)
    return pushed


def clear_pushed_lesson(home: str | os.PathLike[str] | None = None) -> None:
    """Withdraw the pushed lesson (participants keep whatever lesson they have open)."""
    with _write_lock:
        try:
            (classroom_dir(home) / _PUSHED).unlink()
        except FileNotFoundError:
            pass


def pushed_lesson(home: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The pushed lesson, ``{"lesson": id, "pushed_at": seconds}``, or None. The id is as written: the
    reader checks that it still names a lesson."""
    pushed = _read(classroom_dir(home) / _PUSHED)
    lesson = pushed.get("lesson")
    if not isinstance(lesson, str) or not lesson:
        return None
    stamp = pushed.get("pushed_at")
    return {"lesson": lesson, "pushed_at": float(stamp) if isinstance(stamp, (int, float)) else 0.0}


# --- what a participant's runs measured ----------------------------------------------------------------

_DELTA_M_CHECKS = {"delta_m_above": (("label", "baseline"),), "delta_m_below": (("label", "baseline"),),
                   "delta_m_higher": (("label", "baseline"), ("than", "than_baseline"))}


def _delta_m(results: Any, label: str, baseline: str, task: str | None) -> float:
    """Δm % of ``label`` against ``baseline``, averaged over the seeds both have (NaN when none)."""
    from mtl_core.analysis.transfer import relative_change

    mine = {run.seed: run for run in results.runs if run.label == label}
    theirs = {run.seed: run for run in results.runs if run.label == baseline}
    per_seed = []
    for seed in sorted(set(mine) & set(theirs)):
        run, base = mine[seed], theirs[seed]
        names = [task] if task is not None else list(run.result.get("final_metrics") or {})
        changes = []
        for name in names:
            try:
                value, higher = run.test_metric(name)
                reference, _ = base.test_metric(name)
            except Exception:  # noqa: BLE001 — a metric a run lacks leaves this seed out
                continue
            changes.append(float(relative_change(value, reference, higher)))
        per_seed.append(100.0 * _seed_mean(changes))
    return _seed_mean(per_seed)


def _mean_cosine(results: Any, label: str, first_probes: int | None) -> float:
    return _seed_mean(mean_pairwise_cosine(run, first_probes) for run in results.runs if run.label == label)


def _test_metric(results: Any, label: str, task: str) -> float:
    values = []
    for run in results.runs:
        if run.label != label:
            continue
        try:
            values.append(run.test_metric(task)[0])
        except Exception:  # noqa: BLE001 — the run has no metric for it: left out
            continue
    return _seed_mean(values)


def checked_quantity(lesson: Any, results: Any) -> tuple[str, dict[str, float]]:
    """What the lesson's checks compare, measured on one participant's ``results``
    (:class:`~mtl_core.workshop.lessons.LessonResults` of a :class:`~mtl_core.workshop.lessons.Lesson`):
    the quantity's name (with its unit) and series → value (NaN where a run is missing), from the
    first kind of check the lesson has among Δm, mean gradient cosine and a task's test metric;
    ``("", {})`` for a lesson whose checks compare none of these."""
    delta_pairs: dict[str, tuple[str, str, str | None]] = {}
    for spec in lesson.checks:
        for label_key, base_key in _DELTA_M_CHECKS.get(spec.name, ()):
            label, baseline = spec.params.get(label_key), spec.params.get(base_key)
            if label and baseline:
                task = spec.params.get("task")
                delta_pairs.setdefault(f"{label} vs {baseline}", (label, baseline, task))
    if delta_pairs:
        tasks = {task for _, _, task in delta_pairs.values()}
        name = f"Δm of {next(iter(tasks))} (%)" if len(tasks) == 1 and None not in tasks else "Δm (%)"
        return name, {series: _delta_m(results, *pair) for series, pair in delta_pairs.items()}
    for spec in lesson.checks:
        if spec.name == "mean_cosine_higher":
            first = spec.params.get("first_probes")
            labels = [spec.params["label"], spec.params["than"]]
            return "mean gradient cosine", {label: _mean_cosine(results, label, first) for label in labels}
    for spec in lesson.checks:
        if spec.name in ("metric_better", "metric_gain_significant"):
            task = spec.params["task"]
            labels = spec.params.get("labels") or [spec.params.get("label")]
            labels = [labels] if isinstance(labels, str) else list(labels)
            labels = [label for label in [*labels, spec.params.get("than")] if label]
            return f"{task}'s test metric", {label: _test_metric(results, label, task) for label in labels}
    return "", {}
