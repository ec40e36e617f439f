"""Lesson files and check functions, without training: every shipped lesson validates, a broken file
gives an error naming the file and the field, and each check computes its verdict from the records a
run leaves (final metrics, probe records) — on hand-made records whose answer is known."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from mtl_core.lessons import (
    CHECKS,
    LESSONS_ENV,
    LessonError,
    LessonResults,
    RunResult,
    evaluate_check,
    get_lesson,
    lesson_files,
    load_lesson,
    load_lessons,
    update_conflicts,
)

MINIMAL = """\
title: A tiny lesson
story: Two related tasks.
question: Does sharing help?
expect: It does.
preset:
  base: {suite: planted, suite_options: {n_tasks: 2, n_samples: 60, dim: 4}, epochs: 1}
  seeds: [0, 1]
  runs:
    - label: hard
    - label: single
      strategy: single
check:
  - delta_m_below: {label: hard, baseline: single, below: 100.0}
"""


def _write(folder: Path, text: str, name: str = "07-tiny.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- the shipped lessons -----------------------------------------------------------------------------------
def test_every_shipped_lesson_validates_with_text_runs_and_checks() -> None:
    lessons = load_lessons()
    assert len(lessons) >= 6
    assert len(lesson_files()) == len(lessons)
    for lesson in lessons:
        for text in (lesson.title, lesson.story, lesson.question, lesson.expect, lesson.look_at):
            assert len(text) > 10, (lesson.id, text)
        assert lesson.checks and lesson.n_runs() >= 1
        for run in lesson.runs:
            assert run.config.name.startswith(f"lesson {lesson.id}: {run.label}")
        # every label a check names has runs (the loader enforces it; here the data say so too)
        for spec in lesson.checks:
            for key in CHECKS[spec.name].label_params:
                value = spec.params.get(key)
                for label in [value] if isinstance(value, str) else list(value or []):
                    assert label in lesson.labels


def test_lesson_with_a_study_plans_its_runs() -> None:
    lesson = get_lesson("choosing-groups")
    assert lesson.study is not None and lesson.study.seeds == (0, 1, 2)
    assert lesson.study_size() == 3 * (4 + 6)  # per seed: 4 tasks alone + 6 pairs
    assert lesson.n_runs() == 1 + lesson.study_size()
    assert lesson.to_dict()["study"]["seeds"] == [0, 1, 2]


def test_runs_merge_base_options_and_repeat_over_seeds(tmp_path: Path) -> None:
    lesson = load_lesson(_write(tmp_path, MINIMAL))
    assert lesson.id == "tiny" and lesson.order == 7
    assert [(r.label, r.seed) for r in lesson.runs] == [("hard", 0), ("hard", 1), ("single", 0), ("single", 1)]
    single = lesson.runs[2].config
    assert single.strategy == "single" and single.suite_options["n_tasks"] == 2 and single.suite_options["dim"] == 4
    assert single.suite_options["p_in"] == 0.9  # defaults resolved by validation


def test_lessons_folder_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, MINIMAL)
    monkeypatch.setenv(LESSONS_ENV, str(tmp_path))
    assert [lesson.id for lesson in load_lessons()] == ["tiny"]
    with pytest.raises(LessonError, match=r"`lesson` must be one of tiny, got 'nope'"):
        get_lesson("nope")


# --- errors name the file and the field ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("question: Does sharing help?\n", ""), r"07-tiny.yaml: `question` must be a non-empty text"),
        (lambda t: t + "colour: blue\n", r"`colour` must be a known field \(title, story"),
        (lambda t: t.replace("dim: 4}", "dim: 4, p_in: 7}"), r"`preset.base.suite_options.p_in`|`preset.runs\[0\].suite_options.p_in` must be a number in \[-1.0, 1.0\], got 7"),
        (lambda t: t.replace("strategy: single", "strategy: shared"), r"`preset.runs\[1\].strategy` must be one of"),
        (lambda t: t.replace("- label: single", "- label: hard"), r"`preset.runs\[1\].label` must be a label not used by another run"),
        (lambda t: t.replace("- label: single", "- label: 'two words'"), r"`preset.runs\[1\].label` must be a label of letters"),
        (lambda t: t.replace("seeds: [0, 1]", "seeds: [0, 0]"), r"`preset.seeds` must be distinct seeds"),
        (lambda t: t.replace("delta_m_below:", "delta_m_lower:"), r"`check\[0\]` must be a known check \(.*delta_m_below"),
        (lambda t: t.replace("below: 100.0", "beneath: 1"), r"`check\[0\].delta_m_below.beneath` must be a parameter of delta_m_below"),
        (lambda t: t.replace("label: hard, baseline", "baseline"), r"`check\[0\].delta_m_below.label` must be given"),
        (lambda t: t.replace("baseline: single", "baseline: solo"), r"`check\[0\].delta_m_below.baseline` must be a run label of the preset \(hard, single\), got 'solo'"),
        (lambda t: t.replace("check:\n  - delta_m_below: {label: hard, baseline: single, below: 100.0}",
                             "check:\n  - metric_better: {task: t9, labels: [hard], than: single}"),
         r"`check\[0\].metric_better.task` must be a task of the runs labelled hard \(t1, t2\), got 't9'"),
        (lambda t: t.replace("check:\n  - delta_m_below: {label: hard, baseline: single, below: 100.0}",
                             "check:\n  - groupings_agree: {tag_label: hard}"),
         r"`check\[0\].groupings_agree` must be used with a preset that has a `study`"),
        (lambda t: t.replace("title: A tiny lesson", "title: [A, tiny: lesson"), r"`file` must be valid YAML, got 'a syntax error at line"),
    ],
)
def test_a_broken_lesson_file_names_the_file_and_the_field(tmp_path: Path, change, message: str) -> None:
    path = _write(tmp_path, change(MINIMAL))
    with pytest.raises(LessonError, match=message) as caught:
        load_lesson(path)
    assert str(caught.value).startswith("07-tiny.yaml: ")


def test_a_badly_named_file_and_duplicate_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LessonError, match=r"`file name` must be NN-lesson-id.yaml"):
        load_lesson(_write(tmp_path, MINIMAL, "my lesson.yaml"))
    (tmp_path / "my lesson.yaml").unlink()
    _write(tmp_path, MINIMAL, "01-same.yaml")
    _write(tmp_path, MINIMAL, "02-same.yaml")
    with pytest.raises(LessonError, match=r"a lesson id not used by 01-same.yaml"):
        load_lessons(tmp_path)


# --- checks on hand-made records -----------------------------------------------------------------------------
def _result(tasks: dict[str, float], method: str = "ew", higher: bool = False) -> dict:
    return {
        "status": "done",
        "config": {"method": method},
        "tasks": [{"name": name} for name in tasks],
        "final_metrics": {name: {"value": value, "higher_is_better": higher} for name, value in tasks.items()},
    }


def _lesson(tmp_path: Path, checks: str, runs: str = "[a, b]") -> object:
    labels = runs.strip("[]").split(", ")
    text = MINIMAL.replace("  runs:\n    - label: hard\n    - label: single\n      strategy: single\n",
                           "  runs:\n" + "".join(f"    - label: {label}\n" for label in labels))
    text = text.split("check:")[0] + "check:\n" + textwrap.dedent(checks)
    return load_lesson(_write(tmp_path, text))


def test_delta_m_and_metric_checks_compare_paired_seeds(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, """\
        - delta_m_higher: {label: a, baseline: base, than: b, margin: 5}
        - delta_m_below: {label: b, baseline: base, below: 0}
        - metric_better: {task: t1, labels: [a], than: b, margin: 10}
    """, runs="[a, b, base]")
    runs = []
    for seed, scale in ((0, 1.0), (1, 2.0)):
        runs += [RunResult("base", seed, _result({"t1": 1.0 * scale, "t2": 1.0 * scale})),
                 RunResult("a", seed, _result({"t1": 0.8 * scale, "t2": 0.9 * scale})),  # Δm = +15 %
                 RunResult("b", seed, _result({"t1": 1.1 * scale, "t2": 1.0 * scale}))]  # Δm = −5 %
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", runs))
    assert passed, explanation
    assert "a +15.0 %" in explanation and "b -5.0 %" in explanation
    # a's t1 is 27 % better than b's: above a 10 % margin, below a 30 % one
    assert "a +27.3 %" in explanation
    strict = _lesson(tmp_path, "- metric_better: {task: t1, labels: [a], than: b, margin: 30}\n", runs="[a, b]")
    passed, explanation = evaluate_check(strict, LessonResults("tiny", runs))
    assert not passed and explanation.startswith("✗ metric_better")


def test_gradient_share_and_weight_ratio_read_norm_and_weight_probes(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, """\
        - grad_share_larger: {task: t2, under: a, than: [b]}
        - final_weight_ratio_below: {label: b, task: t2, reference: t1, below: 0.5}
    """)
    under_a = RunResult("a", 0, _result({"t1": 1, "t2": 1}), {"norms": [[1.0, 99.0], [1.0, 9.0]]})  # shares .99, .9
    under_b = RunResult("b", 0, _result({"t1": 1, "t2": 1}),
                        {"norms": [[1.0, 99.0], [1.0, 9.0]], "weights": [[1.0, 1.0], [1.9, 0.1]]})  # .99, .32
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [under_a, under_b]))
    assert passed, explanation
    assert "a 0.945" in explanation and "b 0.656" in explanation and "t2/t1 under b: 0.0526" in explanation
    swapped = LessonResults("tiny", [RunResult("a", 0, under_b.result, under_b.probes),
                                     RunResult("b", 0, under_a.result, {**under_a.probes, "weights": [[1.0, 1.0]]})])
    passed, explanation = evaluate_check(lesson, swapped)
    assert not passed and explanation.count("✗") == 2


def test_cosine_and_conflict_checks(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, """\
        - mean_cosine_higher: {label: a, than: b, margin: 0.3}
        - conflict_fraction_at_least: {label: b, at_least: 0.5}
    """)
    a = RunResult("a", 0, _result({"t1": 1, "t2": 1}), {"cosine": [[[1, 0.5], [0.5, 1]], [[1, 0.3], [0.3, 1]]]})
    b = RunResult("b", 0, _result({"t1": 1, "t2": 1}),
                  {"cosine": [[[1, -0.2], [-0.2, 1]], [[1, 0.1], [0.1, 1]]], "conflict": [[1.0], [0.0]]})
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [a, b]))
    assert passed, explanation
    assert "a +0.400" in explanation and "b -0.050" in explanation and "50 %" in explanation


def test_update_conflicts_rebuild_each_methods_direction_from_cosines_and_norms() -> None:
    # cos = −0.5, ‖g₂‖ = 4‖g₁‖: the plain sum has d·g₁ = 1 − 2 < 0; MGDA and PCGrad never conflict.
    probes = {"cosine": [[[1.0, -0.5], [-0.5, 1.0]], [[1.0, 0.5], [0.5, 1.0]]], "norms": [[1.0, 4.0], [1.0, 4.0]]}
    run = RunResult("x", 0, _result({"t1": 1, "t2": 1}), probes)
    assert update_conflicts(run, "ew") == [True, False]
    assert update_conflicts(run, "mgda") == [False, False]
    assert update_conflicts(run, "pcgrad") == [False, False]
    with pytest.raises(Exception, match="cannot be rebuilt from the probes"):
        update_conflicts(run, "gradnorm")


def test_groupings_agree_compares_tag_study_and_planted_groups(tmp_path: Path) -> None:
    text = MINIMAL.replace("n_tasks: 2", "n_tasks: 4, n_groups: 2").split("check:")[0]
    text = text.replace("  runs:\n    - label: hard\n    - label: single\n      strategy: single\n",
                        "  runs:\n    - label: tag\n      tag: true\n")
    text += "  study: {seeds: [0, 1]}\ncheck:\n  - groupings_agree: {tag_label: tag, k: 2}\n"
    lesson = load_lesson(_write(tmp_path, text))
    tasks = ["t1", "t2", "t3", "t4"]
    affinity = np.full((4, 4), -0.1)
    for i, j in ((0, 2), (2, 0), (1, 3), (3, 1)):
        affinity[i, j] = 0.3
    tag = RunResult("tag", 0, {"tasks": [{"name": t} for t in tasks]}, {"affinity": [affinity.tolist()]})
    study = {"n_runs": 20, "planted_groups": [["t1", "t3"], ["t2", "t4"]],
             "groupings": {"transfer": [{"k": 2, "groups": [["t2", "t4"], ["t3", "t1"]]}]}}
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [tag], study))
    assert passed, explanation
    study["groupings"]["transfer"][0]["groups"] = [["t1", "t2"], ["t3", "t4"]]
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [tag], study))
    assert not passed and "[['t1', 't2'], ['t3', 't4']]" in explanation


def test_missing_runs_or_probes_fail_the_check_with_the_reason(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, "- mean_cosine_higher: {label: a, than: b}\n")
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [RunResult("a", 0, _result({"t1": 1}))]))
    assert not passed and "cannot be checked: no finished run labelled 'b'" in explanation
    no_probes = [RunResult("a", 0, _result({"t1": 1})), RunResult("b", 0, _result({"t1": 1}))]
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", no_probes))
    assert not passed and "nan" in explanation.lower()
