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
