"""Grouping search: exhaustive and heuristic partitions against brute force, conventions, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_core.analysis import best_grouping, best_groupings, grouping_score, set_partitions, task_scores

BELL = [1, 1, 2, 5, 15, 52, 203, 877]


def brute_force(scores: np.ndarray) -> dict[int, float]:
    """k → the best mean predicted score over every partition with at most k blocks, computed
    directly from the definition (mean over group mates, 0 alone), independently of the module."""
    size = scores.shape[0]
    best = {k: -math.inf for k in range(1, size + 1)}
    for partition in set_partitions(list(range(size))):
        total = 0.0
        for block in partition:
            for a in block:
                mates = [b for b in block if b != a]
                total += sum(scores[a][b] for b in mates) / len(mates) if mates else 0.0
        for k in range(len(partition), size + 1):
            best[k] = max(best[k], total / size)
    return best


def assert_valid(grouping, names: list[str], scores: np.ndarray) -> None:
    flat = [task for group in grouping.groups for task in group]
    assert sorted(flat) == sorted(names)
    assert 1 <= len(grouping.groups) <= grouping.k
    assert grouping.score == pytest.approx(grouping_score(scores, grouping.groups, names))
    assert grouping.task_scores == pytest.approx(task_scores(scores, grouping.groups, names))


def test_set_partitions_counts_are_bell_numbers() -> None:
    for n in range(1, 8):
        assert len(set_partitions(list(range(n)))) == BELL[n]
    # at most two blocks of four items: S(4,1) + S(4,2) = 1 + 7
    assert len(set_partitions("abcd", 2)) == 8


@pytest.mark.parametrize("size", [2, 3, 5, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_matches_brute_force_on_random_matrices(size: int, seed: int) -> None:
    rng = np.random.default_rng(seed * 100 + size)
    scores = rng.normal(size=(size, size))
    names = [f"task{i}" for i in range(size)]
    found = best_groupings(scores, names)
    assert [g.k for g in found] == list(range(1, size + 1))
    expected = brute_force(scores)
    for grouping in found:
        assert grouping.method == "exhaustive"
        assert_valid(grouping, names, scores)
        assert grouping.score == pytest.approx(expected[grouping.k])


@pytest.mark.parametrize("seed", range(6))
def test_heuristic_matches_brute_force_on_random_matrices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = 6 + seed % 2
    scores = rng.normal(size=(size, size))
    names = [f"t{i + 1}" for i in range(size)]
    found = best_groupings(scores, names, exhaustive_limit=0, seed=seed)
    expected = brute_force(scores)
    for grouping in found:
        assert grouping.method == "heuristic"
        assert_valid(grouping, names, scores)
        assert grouping.score == pytest.approx(expected[grouping.k])


def test_heuristic_recovers_planted_blocks_beyond_the_exhaustive_limit() -> None:
    rng = np.random.default_rng(7)
    size, n_groups = 14, 3
    labels = np.arange(size) % n_groups
    scores = np.where(labels[:, None] == labels[None, :], 0.3, -0.2) + 0.05 * rng.standard_normal((size, size))
    names = [f"t{i + 1}" for i in range(size)]
    grouping = best_grouping(scores, n_groups, names)
    assert grouping.method == "heuristic"
    planted = sorted(sorted(names[i] for i in range(size) if labels[i] == g) for g in range(n_groups))
    assert sorted(sorted(g) for g in grouping.groups) == planted


def test_scores_are_read_row_served_by_column() -> None:
    # b helps a a lot, a hurts b a little, c is unrelated
    scores = np.array([[0.0, 0.5, 0.0],
                       [-0.1, 0.0, 0.0],
                       [0.0, 0.0, 0.0]])
    names = ["a", "b", "c"]
    assert task_scores(scores, [["a", "b"], ["c"]], names) == {"a": 0.5, "b": -0.1, "c": 0.0}
    # mean over the group mates: a with b and c gets (0.5 + 0) / 2
    assert task_scores(scores, [["a", "b", "c"]], names)["a"] == pytest.approx(0.25)
    assert best_grouping(scores, 2, names).groups == [["a", "b"], ["c"]]


def test_singletons_score_zero_and_more_groups_never_hurt() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 6))
    found = best_groupings(scores)
    assert found[0].groups == [[f"t{i + 1}" for i in range(6)]]  # k = 1: everything together
    assert all(later.score >= earlier.score - 1e-12 for earlier, later in zip(found, found[1:], strict=False))
    assert found[-1].score >= 0.0  # all singletons score 0, so the best is never below it
    # with only negative transfer, every task is best alone
    negative = -np.abs(scores) - 0.1
    alone = best_grouping(negative, 6)
    assert alone.score == 0.0 and all(len(group) == 1 for group in alone.groups)


def test_diagonal_is_ignored_even_when_nan() -> None:
    scores = np.array([[math.nan, 1.0], [1.0, math.nan]])
    assert best_grouping(scores, 1).score == pytest.approx(1.0)


def test_ten_tasks_are_searched_exhaustively() -> None:
    rng = np.random.default_rng(11)
    scores = rng.normal(size=(10, 10))
    found = best_groupings(scores, max_k=3)
    assert len(found) == 3 and all(g.method == "exhaustive" for g in found)
    heuristic = best_groupings(scores, max_k=3, exhaustive_limit=0)
    for exact, approx in zip(found, heuristic, strict=True):
        assert approx.score <= exact.score + 1e-12


def test_bad_inputs_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="`scores` must be a non-empty square"):
        best_groupings(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite off-diagonal"):
        best_groupings(np.array([[0.0, math.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="`tasks` must be 2 distinct names"):
        best_groupings(np.zeros((2, 2)), ["a", "a"])
    with pytest.raises(ValueError, match="`k` must be an integer in \\[1, 3\\]"):
        best_grouping(np.zeros((3, 3)), 4)
    with pytest.raises(ValueError, match="`groups` must be a partition"):
        task_scores(np.zeros((2, 2)), [["t1"]])


def test_adjusted_rand_index_closed_forms() -> None:
    from mtl_core.analysis import adjusted_rand_index, same_partition

    a = [["t1", "t3"], ["t2", "t4"]]
    assert adjusted_rand_index(a, [["t4", "t2"], ["t3", "t1"]]) == 1.0
    assert same_partition(a, [["t4", "t2"], ["t3", "t1"]])
    # the crossed partition of four tasks: index 0, expected 2/3 · 2/3 · … → −0.5 (Hubert & Arabie)
    assert adjusted_rand_index(a, [["t1", "t2"], ["t3", "t4"]]) == pytest.approx(-0.5)
    # 2 groups of 3 against 3 groups of 2 (one pair split): 8/33
    six = [["a", "b", "c"], ["d", "e", "f"]]
    assert adjusted_rand_index(six, [["a", "b"], ["c", "d"], ["e", "f"]]) == pytest.approx(8 / 33)
    assert adjusted_rand_index([["a"], ["b"], ["c"]], [["c"], ["a"], ["b"]]) == 1.0
    assert adjusted_rand_index([["a", "b", "c"]], [["a"], ["b"], ["c"]]) == 0.0
    with pytest.raises(ValueError, match="same tasks"):
        adjusted_rand_index(a, [["t1", "t2"]])
    with pytest.raises(ValueError, match="two groups"):
        adjusted_rand_index([["a", "b"], ["b"]], [["a", "b"]])


# --- what the Groupings page and `group` command offer first, and how they compare units -------------------


def test_the_suggestion_is_the_best_grouping_that_trains_tasks_together() -> None:
    from mtl_core.analysis import suggest_grouping

    planted = np.array([[0, 0.3, -0.1], [0.3, 0, -0.1], [-0.1, -0.1, 0]])
    found = best_groupings(planted, ["a", "b", "c"])
    suggestion = suggest_grouping(found)
    # k = 2 and k = 3 both give {a, b} · {c}: the smaller k, and grouping is predicted to help
    assert (suggestion.k, suggestion.alone_is_best) == (2, False)
    assert suggestion.score == pytest.approx(0.2)
    assert suggest_grouping([g.to_dict() for g in found]) == suggestion  # as the study stores them


def test_when_every_task_alone_is_best_the_best_real_grouping_is_suggested_and_flagged() -> None:
    from mtl_core.analysis import suggest_grouping

    negative = np.full((4, 4), -0.05)
    found = best_groupings(negative)
    assert all(len(group) == 1 for group in found[-1].groups) and found[-1].score == 0.0
    suggestion = suggest_grouping(found)
    assert suggestion.alone_is_best and suggestion.k == 3  # {two tasks} and two alone: -0.025
    assert suggestion.score == pytest.approx(-0.025)
    assert len(found[suggestion.k - 1].groups) < 4
    assert suggest_grouping(best_groupings(np.zeros((1, 1)))).k is None  # one task: nothing to group


def test_rank_agreement_counts_ordered_pairs_and_spearman() -> None:
    from mtl_core.analysis import rank_agreement

    same = rank_agreement({"a": 0.1, "b": 0.2, "c": 0.3}, {"a": -5.0, "b": 1.0, "c": 2.0})
    assert (same.n, same.pairs, same.concordant, same.same_order) == (3, 3, 3, True)
    assert same.spearman == pytest.approx(1.0)
    reversed_ = rank_agreement({"a": 0.1, "b": 0.2, "c": 0.3}, {"a": 3.0, "b": 2.0, "c": 1.0})
    assert (reversed_.concordant, reversed_.spearman, reversed_.same_order) == (0, pytest.approx(-1.0), False)
    tied = rank_agreement({"a": 0.2, "b": 0.2, "c": 0.0, "d": 0.5}, {"a": 1.0, "b": -1.0, "c": 0.0, "d": None})
    assert (tied.n, tied.pairs, tied.concordant) == (3, 2, 1)  # d unmeasured; a-b tied in prediction
    assert tied.spearman == pytest.approx(0.0)  # mean ranks of the tie: (1.5, 1.5, 0) against (2, 0, 1)
    assert rank_agreement({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 3.0}).spearman is None  # below 3 items
    assert rank_agreement({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0}).to_dict() == {
        "n": 3, "pairs": 0, "concordant": 0, "spearman": None, "same_order": False}


def test_each_source_has_its_own_unit() -> None:
    from mtl_core.studies.study import SCORE_UNITS, score_unit

    assert set(SCORE_UNITS) == {"transfer", "affinity", "cosine"}
    assert score_unit("transfer").format(-0.0541) == "-5.41 %"
    assert score_unit("cosine").format(0.2022) == "+0.202" and score_unit("cosine").name == "mean gradient cosine"
    assert score_unit("affinity").format(0.0011234) == "+0.00112"  # three significant digits, however small
    assert score_unit("affinity").format(None) == "—" and not score_unit("affinity").percent
    assert score_unit("other").name == "other score"


def _evaluation(source: str) -> dict:
    return {"source": source, "predicted_score": 0.2022, "measured_score": {"mean": -0.0541},
            "rank_agreement": {"n": 4, "pairs": 5, "concordant": 4, "spearman": 0.6, "same_order": False},
            "tasks": {"t1": {"predicted": 0.2, "mean": -0.05, "ci_low": -0.1, "ci_high": 0.0}}}


def test_the_summary_gives_each_number_in_its_unit() -> None:
    from mtl_core.studies.grouping_runs import evaluation_summary

    transfer = evaluation_summary(_evaluation("transfer"), bold=True)
    assert transfer == ("Measured mean gain over tasks: **-5.41 %** against training each task alone "
                        "(predicted +20.22 %).")
    cosine = evaluation_summary(_evaluation("cosine"))
    measured, prediction = cosine.split(". The prediction", 1)
    assert measured.endswith("-5.41 % against training each task alone")
    assert "%" not in prediction and "mean gradient cosine (mean over tasks +0.202, unitless)" in prediction
    assert "orders 4 of 5 pairs of tasks as measured (Spearman rank correlation ρ = +0.60)" in prediction
    unknown = evaluation_summary({**_evaluation("cosine"), "rank_agreement": None})
    assert "Too few tasks measured" in unknown


def test_the_group_command_prints_a_cosine_prediction_without_percent(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from mtl_core.cli.group import _print_grouping

    grouping = best_grouping(np.array([[0, 0.2], [0.2, 0]]), 1, ["t1", "t2"])
    evaluation = _evaluation("cosine")
    evaluation["tasks"]["t2"] = {"predicted": 0.2, "mean": 0.01, "ci_low": None, "ci_high": None}
    _print_grouping(argparse.Namespace(k=1, source="cosine"), grouping, ["t1", "t2"], evaluation)
    out = capsys.readouterr().out
    assert "predicted score (mean gradient cosine, unitless; mean over tasks): +0.2" in out
    (row,) = [line for line in out.splitlines() if line.startswith("t1")]
    assert row.split()[1] == "+0.2" and row.split()[2:4] == ["-5.00", "%"]
    assert "(predicted +20.22 %)" not in out and "only its order is compared" in out


def test_measured_vs_predicted_across_units_has_no_diagonal() -> None:
    from mtl_core import figures

    predicted, measured = {"a": 0.1, "b": 0.3, "c": 0.2}, {"a": -5.0, "b": 2.0, "c": 1.0}
    fig = figures.measured_vs_predicted(predicted, measured, label="change (%)", predicted_label="cosine")
    assert [trace.name for trace in fig.data] == ["tasks"]
    assert fig.layout.title.text == "Measured vs predicted (Spearman ρ = 1.00)"
    assert fig.layout.xaxis.title.text == "predicted cosine" and fig.layout.yaxis.scaleanchor is None
    same = figures.measured_vs_predicted(predicted, {"a": 0.1, "b": 0.2, "c": 0.3}, label="change")
    assert "Pearson" in same.layout.title.text and same.data[0].name == "y = x (perfect prediction)"


def test_the_group_command_says_when_every_task_is_alone(capsys: pytest.CaptureFixture[str]) -> None:
    from mtl_core.cli.group import _print_alone_note

    _print_alone_note(np.full((3, 3), -0.05), ["a", "b", "c"], "transfer")
    error = capsys.readouterr().err
    assert "nothing to train together" in error and "at --k 2 (-3.33 %)" in error
