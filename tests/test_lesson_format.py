"""Lesson files and check functions, without training: every shipped lesson validates, a broken file
gives an error naming the file and the field, and each check computes its verdict from the records a
run leaves (final metrics, probe records) — on hand-made records whose answer is known."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from mtl_core.workshop.lessons import (
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
    assert not passed and explanation.startswith("✗ t1's test metric against b")


def _verdicts(explanation: str) -> list[bool]:
    """One verdict per check line of :func:`evaluate_check`'s explanation."""
    return [line.startswith("✓") for line in explanation.splitlines()]


def test_delta_m_above_and_every_seed_ask_for_the_mean_or_each_seed(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, """\
        - delta_m_above: {label: a, baseline: base, above: 5}
        - delta_m_above: {label: a, baseline: base, above: 5, every_seed: true}
        - delta_m_below: {label: b, baseline: base, below: 0, every_seed: true}
        - delta_m_higher: {label: a, baseline: base, than: b, margin: 2, every_seed: true}
    """, runs="[a, b, base]")
    runs = []
    for seed, (a_t1, b_t1) in enumerate(((0.6, 1.1), (0.92, 1.02))):  # a: Δm +20 % then +4 %; b: −5 %, −1 %
        runs += [RunResult("base", seed, _result({"t1": 1.0, "t2": 1.0})),
                 RunResult("a", seed, _result({"t1": a_t1, "t2": 1.0})),
                 RunResult("b", seed, _result({"t1": b_t1, "t2": 1.0}))]
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", runs))
    # the mean (+12 %) is above 5, one seed (+4 %) is not; b is below 0 and a beats b by > 2 points on each seed
    assert _verdicts(explanation) == [True, False, True, True] and not passed
    assert "Δm of a vs base: +12.0 % (per seed [20, 4]); expected above +5 % on average over seeds" in explanation
    assert "expected above +5 % on every seed" in explanation


def test_a_per_task_delta_m_compares_each_task_with_its_own_baseline(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, """\
        - delta_m_higher: {task: t1, label: a, baseline: a1, than: b, than_baseline: b1, margin: 15}
        - delta_m_above: {task: t1, label: b, baseline: b1}
    """, runs="[a, a1, b, b1]")
    runs = []
    for seed in (0, 1):
        runs += [RunResult("a", seed, _result({"t1": 0.7, "t2": 5.0})),  # t1 30 % better than alone
                 RunResult("a1", seed, _result({"t1": 1.0})),  # a run of t1 alone: no t2 to compare
                 RunResult("b", seed, _result({"t1": 2.1, "t2": 0.1})),  # t1 5 % worse than alone
                 RunResult("b1", seed, _result({"t1": 2.0}))]
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", runs))
    assert _verdicts(explanation) == [True, False]
    assert "t1's relative change vs a1 / b1: a +30.0 %" in explanation and "b -5.0 %" in explanation
    with pytest.raises(LessonError, match=r"`check\[0\].delta_m_above.task` must be a task of the runs labelled a"):
        _lesson(tmp_path, "- delta_m_above: {task: t9, label: a, baseline: b}\n", runs="[a, b]")


def test_a_significant_gain_needs_a_consistent_paired_improvement(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, """\
        - metric_gain_significant: {task: t1, label: steady, than: base}
        - metric_gain_significant: {task: t1, label: noisy, than: base}
        - metric_gain_significant: {task: t1, label: worse, than: base}
        - metric_gain_significant: {task: t1, label: steady, than: base, alpha: 0.0001}
    """, runs="[steady, noisy, worse, base]")
    runs = []
    gains = {"steady": (0.20, 0.25, 0.22, 0.24), "noisy": (0.40, -0.10, 0.30, -0.05), "worse": (-0.2, -0.3, -0.25, -0.2)}
    for seed in range(4):
        runs.append(RunResult("base", seed, _result({"t1": 2.0, "t2": 1.0})))
        for label, per_seed in gains.items():  # lower is better: a gain g is a metric of 2 (1 − g)
            runs.append(RunResult(label, seed, _result({"t1": 2.0 * (1 - per_seed[seed]), "t2": 1.0})))
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", runs))
    # steady: mean +22.75 %, t ≈ 20 with 3 df, p ≈ 0.00025: significant at 5 %, not at 0.01 %
    assert _verdicts(explanation) == [True, False, False, False] and not passed
    assert "t1's test metric, steady against base (positive = better): +22.8 % (95 % CI" in explanation
    assert "paired t-test p = 0.00025" in explanation
    one_seed = LessonResults("tiny", [run for run in runs if run.seed == 0])
    passed, explanation = evaluate_check(lesson, one_seed)
    assert _verdicts(explanation) == [False, False, False, False]  # one seed: no test, no claim


def test_the_cosine_check_can_look_at_the_first_probes_only(tmp_path: Path) -> None:
    early = _lesson(tmp_path, "- mean_cosine_higher: {label: a, than: b, margin: 0.3, first_probes: 1}\n")
    whole = _lesson(tmp_path, "- mean_cosine_higher: {label: a, than: b, margin: 0.3}\n")
    a = RunResult("a", 0, _result({"t1": 1, "t2": 1}), {"cosine": [[[1, 0.5], [0.5, 1]], [[1, -0.5], [-0.5, 1]]]})
    b = RunResult("b", 0, _result({"t1": 1, "t2": 1}), {"cosine": [[[1, 0.0], [0.0, 1]], [[1, 0.0], [0.0, 1]]]})
    passed, explanation = evaluate_check(early, LessonResults("tiny", [a, b]))
    assert passed and "over the first 1 probes: a +0.500" in explanation
    passed, explanation = evaluate_check(whole, LessonResults("tiny", [a, b]))
    assert not passed and "a +0.000" in explanation


def test_planted_transfer_signs_read_the_study_cells_by_group(tmp_path: Path) -> None:
    text = MINIMAL.replace("n_tasks: 2", "n_tasks: 4, n_groups: 2").split("check:")[0]
    text += "  study: {seeds: [0, 1]}\ncheck:\n  - planted_transfer_signs: {}\n"
    lesson = load_lesson(_write(tmp_path, text))
    mean = [[None, -0.1, 0.05, -0.2], [-0.1, None, -0.3, 0.15], [0.1, -0.05, None, -0.1], [0.0, 0.02, -0.1, None]]
    study = {"tasks": ["t1", "t2", "t3", "t4"], "planted_groups": [["t1", "t3"], ["t2", "t4"]],
             "transfer": {"mean": mean}}
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [], study))
    assert passed, explanation
    assert "inside the planted groups +8.0 % (4 cells, +2.0 … +15.0), across groups -11.9 % (8 cells" in explanation
    mean[0][2] = -0.5  # one in-group cell very negative: the in-group mean turns negative
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [], study))
    assert not passed
    with pytest.raises(LessonError, match=r"`check\[0\].planted_transfer_signs` must be used with a preset that has a `study`"):
        _lesson(tmp_path, "- planted_transfer_signs: {}\n")


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
    # TAG is read as the study reads it: the median over the epochs up to the run's best epoch, so
    # epochs after it (here a spike that would turn the mean around) do not count.
    study["groupings"]["transfer"][0]["groups"] = [["t1", "t3"], ["t2", "t4"]]
    wrong = np.full((4, 4), -0.1)
    for i, j in ((0, 1), (1, 0), (2, 3), (3, 2)):
        wrong[i, j] = 5.0
    records = [affinity.tolist()] * 3 + [wrong.tolist()] * 2
    late = RunResult("tag", 0, {"tasks": [{"name": t} for t in tasks], "best_epoch": 3}, {"affinity": records})
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [late], study))
    assert passed, explanation
    assert late.epochs_of("affinity") == [1, 2, 3, 4, 5]  # one record per epoch unless the epochs were kept
    kept = RunResult("tag", 0, late.result, {"affinity": records}, probe_epochs={"affinity": [4, 5, 6, 1, 2]})
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [kept], study))
    assert not passed and "TAG from one run: [['t1', 't2'], ['t3', 't4']]" in explanation


def test_missing_runs_or_probes_fail_the_check_with_the_reason(tmp_path: Path) -> None:
    lesson = _lesson(tmp_path, "- mean_cosine_higher: {label: a, than: b}\n")
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", [RunResult("a", 0, _result({"t1": 1}))]))
    assert not passed and "cannot be checked: no finished run labelled 'b'" in explanation
    no_probes = [RunResult("a", 0, _result({"t1": 1})), RunResult("b", 0, _result({"t1": 1}))]
    passed, explanation = evaluate_check(lesson, LessonResults("tiny", no_probes))
    assert not passed and "nan" in explanation.lower()
