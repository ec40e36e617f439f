"""Every workshop lesson, run for real: its preset is trained headless and the observation the lesson
promises its students must hold on the result, within a minute of CPU time per lesson.

Slow (about 100 s of CPU for all six lessons on one core, 11–23 s each; the planted lessons train
with early stopping, so their runs take as many epochs as they need); deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import pytest

from mtl_core.workshop.lessons import evaluate_check, load_lessons, run_lesson_headless

pytestmark = pytest.mark.slow

#: The issue's budget for one lesson's preset ("≤ 60 s on 2 cores"), measured as process CPU time.
CPU_BUDGET_SECONDS = 60.0
LESSONS = load_lessons()


def test_the_six_workshop_lessons_are_there_in_order() -> None:
    assert [lesson.id for lesson in LESSONS] == [
        "related-tasks",
        "scale-imbalance",
        "conflicting-gradients",
        "scarce-task",
        "choosing-groups",
        "sharing-strategies",
    ]
    assert [lesson.order for lesson in LESSONS] == sorted(lesson.order for lesson in LESSONS)


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.id for lesson in LESSONS])
def test_lesson_preset_shows_the_expected_observation(lesson, record_property) -> None:
    results = run_lesson_headless(lesson)
    record_property("cpu_seconds", round(results.cpu_seconds, 1))
    print(f"\n{lesson.id}: {results.cpu_seconds:.1f} s CPU, {results.wall_seconds:.1f} s wall")
    assert len(results.runs) == len(lesson.runs)
    assert all(run.result["status"] == "done" for run in results.runs)
    if lesson.study is not None:
        assert results.study is not None and results.study["n_failed"] == 0
    passed, explanation = evaluate_check(lesson, results)
    assert passed, f"lesson {lesson.id}: the expected observation does not hold:\n{explanation}"
    assert explanation.count("✓") == len(lesson.checks)
    assert results.cpu_seconds <= CPU_BUDGET_SECONDS, (
        f"lesson {lesson.id} took {results.cpu_seconds:.1f} s of CPU, over the {CPU_BUDGET_SECONDS:.0f} s budget"
    )
